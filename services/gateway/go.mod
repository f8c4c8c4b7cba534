module github.com/butakero/butakero/services/gateway

go 1.26
