module github.com/butakero/butakero/services/resolver

go 1.26
