// Command recorder runs the recorder alone against the NATS cluster at
// NATS_URL, as it runs in a container: every event in, the operation and
// song projections out.
package main

import (
	"github.com/butakero/butakero/platform/runtime/standalone"
	"github.com/butakero/butakero/services/recorder/recorder"
)

func main() { standalone.Main("recorder", recorder.RunAlone) }
