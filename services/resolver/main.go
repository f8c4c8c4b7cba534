// Command resolver runs the resolve stage alone against the NATS cluster at
// NATS_URL, as it runs in a container: song.requested in, video.resolved out.
package main

import (
	"github.com/butakero/butakero/platform/runtime/standalone"
	"github.com/butakero/butakero/services/resolver/resolver"
)

func main() { standalone.Main("resolver", resolver.RunAlone) }
