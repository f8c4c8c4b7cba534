// Package ecs holds the tests that prove deploy/ecs's Terraform against
// the code: the configuration is parsed and evaluated with hashicorp/hcl
// (package tfload, no provider needed) and each check reads what it
// compares from the Go source or from the packages themselves.
package ecs
