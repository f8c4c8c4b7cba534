package events

import "strconv"

// KindPlaylistResolved names a playlist's children: its operation is a
// parent whose children are ordinary operations (services/resolver).
const KindPlaylistResolved Kind = "playlist.resolved"

// TypePlaylistResolved is PlaylistResolved's type.
const TypePlaylistResolved = "butakero.playlist.resolved.v1"

// PlaylistResolved says the parent operation's query named a playlist and
// which operations were started for its items, in the playlist's order.
// Each child's song.requested names the parent (SongRequested.Parent); the
// parent's status is its children's (see GET /v1/operations/{id}).
type PlaylistResolved struct {
	// Source is "youtube" (a YouTube playlist) or "m3u" (an M3U file on
	// an allowed media host).
	Source string `json:"source"`
	// ID is the YouTube playlist id, or the M3U file's URL.
	ID    string `json:"id"`
	Title string `json:"title,omitempty"`
	// Children are the items, each with its operation id.
	Children []PlaylistChild `json:"children"`
	// Truncated is set when the playlist has more items than
	// PLAYLIST_MAX_ITEMS; Total is how many it has, when known.
	Truncated bool `json:"truncated,omitempty"`
	Total     int  `json:"total,omitempty"`
}

// PlaylistChild is one item of a playlist.
type PlaylistChild struct {
	OperationID string `json:"operation_id"`
	// Position is the item's place in the playlist, from 0.
	Position int `json:"position"`
	// Query is what the child operation resolves (a watch URL, a media
	// URL), and Song what the listing said of it.
	Query string `json:"query"`
	Song  Song   `json:"song"`
}

func (PlaylistResolved) Kind() Kind   { return KindPlaylistResolved }
func (PlaylistResolved) Type() string { return TypePlaylistResolved }

// ChildOperationID is the id of the child at position of the playlist
// that the event parentEventID resolved: derived, so that a resolve done
// twice starts the same children.
func ChildOperationID(parentEventID string, position int) string {
	return DeriveID(parentEventID, TypePlaylistResolved+"#"+strconv.Itoa(position))
}

// KindPlaylistEnded ends a parent operation once every child has ended.
const KindPlaylistEnded Kind = "playlist.ended"

// TypePlaylistEnded is PlaylistEnded's type.
const TypePlaylistEnded = "butakero.playlist.ended.v1"

// Playlist outcomes, PlaylistEnded.Status.
const (
	PlaylistSuccess   = "success"
	PlaylistPartial   = "partial"
	PlaylistFailed    = "failed"
	PlaylistCancelled = "cancelled"
)

// PlaylistEnded says every child of a parent operation has ended, and
// how: success when every child succeeded, failed when none did, partial
// otherwise (cancelled when every child was cancelled). Its id derives
// from the parent (PlaylistEndedID): the children's last ends, seen by
// several processes, store one.
type PlaylistEnded struct {
	Status string `json:"status"`
	// Counts are the children by outcome: success, failed, cancelled.
	Counts map[string]int `json:"counts"`
}

func (PlaylistEnded) Kind() Kind   { return KindPlaylistEnded }
func (PlaylistEnded) Type() string { return TypePlaylistEnded }

// PlaylistEndedID is the envelope id of parent operation opID's
// playlist.ended.
func PlaylistEndedID(opID string) string { return DeriveID(opID, TypePlaylistEnded) }

// PlaylistOutcome is the status of a parent whose children ended with
// counts (by success, failed, cancelled) out of n.
func PlaylistOutcome(counts map[string]int, n int) string {
	switch {
	case counts[PlaylistSuccess] == n:
		return PlaylistSuccess
	case counts[PlaylistCancelled] == n:
		return PlaylistCancelled
	case counts[PlaylistSuccess] == 0:
		return PlaylistFailed
	}
	return PlaylistPartial
}
