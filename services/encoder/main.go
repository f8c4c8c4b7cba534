// Command encoder runs the encode stage alone against the NATS cluster at
// NATS_URL, as it runs in a container: audio.downloaded in, a DCA in the
// blob store and dca.encoded plus upload.done out.
package main

import (
	"github.com/butakero/butakero/platform/runtime/standalone"
	"github.com/butakero/butakero/services/encoder/encoder"
)

func main() { standalone.Main("encoder", encoder.RunAlone) }
