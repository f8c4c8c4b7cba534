module github.com/butakero/butakero/cmd/butakero

go 1.26
