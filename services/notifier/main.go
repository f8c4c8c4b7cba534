// Command notifier runs the notifier alone against the NATS cluster at
// NATS_URL, as it runs in a container: every final outcome of an
// operation in, one signed webhook delivery per WEBHOOK_URL out.
package main

import (
	"github.com/butakero/butakero/platform/runtime/standalone"
	"github.com/butakero/butakero/services/notifier/notifier"
)

func main() { standalone.Main("notifier", notifier.RunAlone) }
