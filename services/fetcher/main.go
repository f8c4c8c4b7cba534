// Command fetcher runs the fetch stage alone against the NATS cluster at
// NATS_URL, as it runs in a container: video.resolved in, the audio in the
// blob store and audio.downloaded out.
package main

import (
	"github.com/butakero/butakero/platform/runtime/standalone"
	"github.com/butakero/butakero/services/fetcher/fetcher"
)

func main() { standalone.Main("fetcher", fetcher.RunAlone) }
