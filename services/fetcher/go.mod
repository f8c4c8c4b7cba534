module github.com/butakero/butakero/services/fetcher

go 1.26
