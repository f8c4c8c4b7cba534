package projection

import (
	"testing"

	"github.com/butakero/butakero/events"
)

// TestApplyCancelled: operation.cancelled ends an operation in progress as
// cancelled, and nothing after it changes the outcome; an operation that
// ended before its cancel stays as it ended.
func TestApplyCancelled(t *testing.T) {
	inProgress := Operation{ID: "op1", SongID: "vid1", Status: StatusInProgress, Stage: StageDownloaded, Attempts: 1, LastSeq: 5}
	cancelled, _ := Apply(inProgress, Song{}, envelope(t, "vid1", events.OperationCancelled{Reason: "cancelled by request"}), events.OperationCancelled{Reason: "cancelled by request"}, 6, t1)
	if cancelled.Status != StatusCancelled || cancelled.Stage != StageCancelled || !cancelled.Final() || cancelled.Success ||
		cancelled.Message != "cancelled by request" || cancelled.LastSeq != 6 {
		t.Fatalf("after operation.cancelled: %+v", cancelled)
	}
	late := events.UploadDone{Song: events.Song{ID: "vid1"}, Key: "audio/vid1.dca", Location: "nats://x"}
	after, _ := Apply(cancelled, Song{}, envelope(t, "vid1", late), late, 7, t1)
	if after.Status != StatusCancelled || after.Data != "" || after.LastSeq != 7 {
		t.Errorf("an upload.done after the cancel changed the outcome: %+v", after)
	}

	success := inProgress
	success.Status, success.Success, success.Stage = StatusSuccess, true, StageStored
	kept, _ := Apply(success, Song{}, envelope(t, "vid1", events.OperationCancelled{}), events.OperationCancelled{}, 6, t1)
	if kept.Status != StatusSuccess || !kept.Success {
		t.Errorf("a cancel after the success changed it: %+v", kept)
	}
}
