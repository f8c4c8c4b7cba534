# Butakero: the two commands of the README are `make run` and `make test`.
# Each installs what it needs first (scripts/deps.sh).

MODULES := $(shell go list -f '{{.Dir}}/...' -m 2>/dev/null)
GOTEST_FLAGS ?= -count=1 -timeout 15m

.PHONY: run test deps build vet fmt bench

run: deps
	go run ./cmd/butakero

test: deps vet
	go test $(GOTEST_FLAGS) $(MODULES)

deps:
	@./scripts/deps.sh
	@go mod download -x 2>/dev/null || true
	@cd cmd/butakero && go mod download

build:
	mkdir -p bin && go build -o bin/butakero ./cmd/butakero

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	go vet $(MODULES)

bench: deps
	go run ./cmd/butakero/bench
