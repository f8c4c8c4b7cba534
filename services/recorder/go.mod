module github.com/butakero/butakero/services/recorder

go 1.26
