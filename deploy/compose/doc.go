// Package compose holds the tests that prove deploy/compose's files: the
// compose files loaded with compose-go and checked against the code
// (compose_test.go, part of make test), and the stack itself built and run
// with podman (stack_test.go, build tag deploy, run by make test-deploy).
package compose
