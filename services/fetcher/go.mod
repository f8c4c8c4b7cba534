module github.com/butakero/butakero/services/fetcher

go 1.26.0

require (
	github.com/nats-io/nats.go v1.55.0
	github.com/wader/goutubedl v0.0.0-20260211162955-2c534af3ada4
)

require (
	github.com/klauspost/compress v1.20.1 // indirect
	github.com/nats-io/nkeys v0.4.16 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
	github.com/prometheus/client_golang v1.25.0 // indirect
	golang.org/x/crypto v0.57.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
)
