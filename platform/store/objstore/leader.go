package objstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// leaderGet asks the stream's leader for the first message on subject at or
// after sequence seq, through the JetStream API's STREAM.MSG.GET, which
// only the leader answers. Chunk reads are direct gets, which any replica
// may answer; a follower that lags the committed stream (for a moment after
// a node is lost) may lack a chunk the leader has. The leader holds every
// committed message, so its answer is the one that settles a chunk the
// object's meta names and a direct get did not find. The message not
// existing is jetstream.ErrMsgNotFound.
func leaderGet(ctx context.Context, nc *nats.Conn, stream string, seq uint64, subject string) (uint64, []byte, error) {
	req, err := json.Marshal(struct {
		Seq     uint64 `json:"seq"`
		NextFor string `json:"next_by_subj"`
	}{seq, subject})
	if err != nil {
		return 0, nil, err
	}
	m, err := leaderRequest(ctx, nc, stream, req, subject, seq)
	return m.Sequence, m.Data, err
}

// leaderLast asks the stream's leader for the last message on subject
// (an object's meta), as leaderGet does for a chunk.
func leaderLast(ctx context.Context, nc *nats.Conn, stream, subject string) (leaderMsg, error) {
	req, err := json.Marshal(struct {
		LastFor string `json:"last_by_subj"`
	}{subject})
	if err != nil {
		return leaderMsg{}, err
	}
	return leaderRequest(ctx, nc, stream, req, subject, 0)
}

// leaderMsg is a message in the leader's answer.
type leaderMsg struct {
	Subject  string    `json:"subject"`
	Sequence uint64    `json:"seq"`
	Data     []byte    `json:"data"`
	Time     time.Time `json:"time"`
}

// leaderRequest sends one STREAM.MSG.GET and checks that the answer is a
// message on subject at or after sequence seq.
func leaderRequest(ctx context.Context, nc *nats.Conn, stream string, req []byte, subject string, seq uint64) (leaderMsg, error) {
	msg, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+stream, req)
	if err != nil {
		return leaderMsg{}, err
	}
	var resp struct {
		Error *struct {
			Code        int    `json:"code"`
			ErrCode     uint16 `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
		Message *leaderMsg `json:"message"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return leaderMsg{}, fmt.Errorf("stream message get: %w", err)
	}
	if e := resp.Error; e != nil {
		if e.ErrCode == uint16(jetstream.JSErrCodeMessageNotFound) || e.Code == 404 {
			return leaderMsg{}, jetstream.ErrMsgNotFound
		}
		return leaderMsg{}, &jetstream.APIError{Code: e.Code, ErrorCode: jetstream.ErrorCode(e.ErrCode), Description: e.Description}
	}
	if resp.Message == nil {
		return leaderMsg{}, fmt.Errorf("stream message get: no message in the answer")
	}
	if resp.Message.Subject != subject || resp.Message.Sequence < seq {
		return leaderMsg{}, fmt.Errorf("stream message get: asked for %s from %d, answered %s at %d", subject, seq, resp.Message.Subject, resp.Message.Sequence)
	}
	return *resp.Message, nil
}
