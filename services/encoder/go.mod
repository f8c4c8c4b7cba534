module github.com/butakero/butakero/services/encoder

go 1.26
