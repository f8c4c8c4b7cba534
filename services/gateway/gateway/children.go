package gateway

import (
	"encoding/json"

	"github.com/butakero/butakero/events"
	"github.com/gofiber/contrib/websocket"
)

// A parent's WebSocket carries its children's progress: once the parent's
// playlist.resolved is sent (from the history or live), the socket follows
// every child too, and each child's later events and progress messages go
// out as they come (their operation_id is the child's), unthrottled. The
// socket still closes on the parent's own end (playlist.ended or
// operation.cancelled), not on a child's.

// followChildren makes sub follow the children f names, when f is a
// playlist.resolved.
func (s *server) followChildren(sub *subscriber, f eventFrame) {
	if f.Kind != string(events.KindPlaylistResolved) {
		return
	}
	var pl events.PlaylistResolved
	if err := json.Unmarshal(f.Data, &pl); err != nil {
		s.log.Warn("websocket: unreadable playlist.resolved", "operation_id", f.OperationID, "error", err)
		return
	}
	for _, c := range pl.Children {
		s.hub.follow(sub, c.OperationID)
	}
}

// writeChildProgress sends a child's progress message as it is.
func writeChildProgress(conn *websocket.Conn, p events.Progress) bool {
	p.Type = "progress"
	body, err := json.Marshal(p)
	if err != nil {
		return true
	}
	return writeText(conn, body)
}
