// Command gateway runs the HTTP gateway alone against the NATS cluster at
// NATS_URL, as it runs in a container behind a load balancer.
package main

import (
	"github.com/butakero/butakero/platform/runtime/standalone"
	"github.com/butakero/butakero/services/gateway/gateway"
)

func main() { standalone.Main("gateway", gateway.RunAlone) }
