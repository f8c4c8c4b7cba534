package events

// AudioArriving says the fetcher has begun a download and publishes the
// source, as it arrives, on the stream BUTAKERO_SOURCES (subject
// "sources.<operation_id>", package platform/media/sourcestream), so that
// the encoder may start encoding before the download ends. It announces; it
// is no step of the pipeline: audio.downloaded still says the whole source
// is staged, and an operation whose early encode never happens or fails is
// encoded from the staged blob as before.
//
// Each fetch attempt is one run with an id of its own: a retry (after a
// crash or a failure) is a new run, and what an encoder began on the chunks
// of an earlier run is abandoned, never stored. The audio.downloaded of a
// run names it (AudioDownloaded.Run), which is how the encoder hands that
// delivery the early encode's result.
//
// The event carries no Cause and no Attempt: the stage runtime counts only
// a message's results by their cause, and the projection counts attempts
// from the results; an announcement is neither. Its id derives from the
// run, so a publish made again stores one event.
type AudioArriving struct {
	// Song is what is known of the song when the download starts.
	Song Song `json:"song"`
	// Run is the download's id: every chunk of it carries the id, and the
	// audio.downloaded it ends in names it.
	Run string `json:"run"`
	// Ext is the container's file extension, as audio.downloaded's.
	Ext string `json:"ext,omitempty"`
	// Size is the source's size in bytes when the source says it before
	// sending it (Content-Length, yt-dlp's filesize); 0 when unknown.
	Size int64 `json:"size,omitempty"`
}

// KindAudioArriving is AudioArriving's kind.
const KindAudioArriving Kind = "audio.arriving"

// TypeAudioArriving is AudioArriving's type.
const TypeAudioArriving = "butakero.audio.arriving.v1"

func (AudioArriving) Kind() Kind   { return KindAudioArriving }
func (AudioArriving) Type() string { return TypeAudioArriving }

// ArrivingID is the envelope id of the audio.arriving of run run of
// operation opID.
func ArrivingID(opID, run string) string { return DeriveID(opID+"\x00"+run, TypeAudioArriving) }

// Announcements are the kinds the stream holds that are no step of an
// operation: one is published once per attempt (a retried fetch announces
// its new run), nothing waits for it but the encoder, and an operation's
// history as its clients read it (the gateway's GET /v1/operations/{id},
// its events socket) leaves it out. Projections apply it as any event and
// change nothing for it.
var Announcements = []Kind{KindAudioArriving}

// IsAnnouncement reports whether k is one of Announcements.
func IsAnnouncement(k Kind) bool {
	for _, a := range Announcements {
		if a == k {
			return true
		}
	}
	return false
}
