# Butakero: the two commands of the README are `make run` and `make test`.
# Each installs what it needs first (scripts/deps.sh).

MODULES := $(shell go list -f '{{.Dir}}/...' -m 2>/dev/null)
GOTEST_FLAGS ?= -count=1 -timeout 15m
# What `versions` logs and GET /v1/info report for a local run or build
# (go run stamps no VCS revision of its own).
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo devel)
VERSION_FLAG := -ldflags "-X github.com/butakero/butakero/platform/runtime/versions.Butakero=$(VERSION)"

.PHONY: run test test-deploy deps build vet fmt bench

run: deps
	go run $(VERSION_FLAG) ./cmd/butakero

# scripts/test.sh also installs versitygw and DynamoDB Local (under .tools)
# and runs the tests in a private network namespace.
test: deps vet
	GOTEST_FLAGS="$(GOTEST_FLAGS)" ./scripts/test.sh $(MODULES)

# The image and the compose stack, with podman and no image registry
# (scripts/test-deploy.sh installs what it needs).
test-deploy: deps
	./scripts/test-deploy.sh

deps:
	@./scripts/deps.sh

build:
	mkdir -p bin && go build $(VERSION_FLAG) -o bin/butakero ./cmd/butakero

# Every module also builds and vets alone (GOWORK=off), from what its own
# go.mod requires, and go mod tidy changes nothing: a container build of one
# service needs no workspace.
vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	go vet $(MODULES)
	@for m in $$(go list -f '{{.Dir}}' -m); do \
	  (cd $$m && GOWORK=off go build ./... && GOWORK=off go vet ./...) || { echo "vet: $$m does not build or vet alone (GOWORK=off)"; exit 1; }; \
	  (cd $$m && GOWORK=off go mod tidy -diff) || { echo "vet: go mod tidy would change $$m's go.mod (run it there with GOWORK=off)"; exit 1; }; \
	done; echo "vet: every module builds and vets alone, and is tidy"

bench: deps
	go run ./cmd/butakero/bench
