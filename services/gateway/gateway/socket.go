package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/projection"
	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
)

// Timing of the WebSocket. The server pings every pingEvery and drops a
// client it has not heard from (pong or message) within pongWait; every
// write must finish within writeWait. While a stage runs, progress goes out
// at least once a second: the last one is re-sent when nothing newer came
// for progressResend (checked every progressTick).
const (
	pingEvery      = 20 * time.Second
	pongWait       = 45 * time.Second
	writeWait      = 10 * time.Second
	closeWait      = 2 * time.Second
	progressTick   = 200 * time.Millisecond
	progressResend = 700 * time.Millisecond
	socketReadMax  = 4 << 10
)

// Stages that report progress; the fetcher's and encoder's StageName.
const (
	stageFetch  = "fetch"
	stageEncode = "encode"
)

// localSocketCtx keys the request's context (its trace) for the socket.
const localSocketCtx = "butakero.socket.ctx"

// beforeUpgrade answers, in the API's error shape and before any upgrade,
// every WebSocket request the socket will not serve: a malformed id (400),
// an Origin not allowed (403), an unknown operation (404), a request that
// is not an upgrade (426), and a gateway at MAX_SOCKETS (503).
func (s *server) beforeUpgrade(c *fiber.Ctx) error {
	opID, err := operationID(c)
	if err != nil {
		return err
	}
	if !s.origins.allowSocket(c.Get(fiber.HeaderOrigin)) {
		return errorf(CodeForbidden, "this Origin may not open a WebSocket here (see PUBLIC_URL and ALLOWED_ORIGINS)")
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), storeTimeout)
	defer cancel()
	if _, _, err := s.operation(ctx, opID, false); err != nil {
		return err
	}
	if !websocket.IsWebSocketUpgrade(c) {
		return errorf(CodeUpgradeRequired, "this route is a WebSocket: send an upgrade request")
	}
	if s.sockets.full() {
		c.Set(fiber.HeaderRetryAfter, "5")
		return errorf(CodeTooManyConnections, "too many WebSockets open on this gateway; retry later")
	}
	c.Locals(localSocketCtx, context.WithoutCancel(c.UserContext()))
	return c.Next()
}

// operation is current for a handler: CodeNotFound when neither the
// projection nor the stream knows the operation.
func (s *server) operation(ctx context.Context, opID string, full bool) (projection.Operation, []eventFrame, error) {
	op, hist, err := s.current(ctx, opID, full)
	if errors.Is(err, projection.ErrNotFound) {
		return projection.Operation{}, nil, errorf(CodeNotFound, "unknown operation")
	}
	if err != nil {
		return projection.Operation{}, nil, internal(err)
	}
	return op, hist, nil
}

// socket serves one WebSocket on an operation: its history, then its live
// events and progress, until the operation ends (close 1000), the client
// leaves or stops answering pings, the client is too slow for its buffer
// (close 1013), or the gateway shuts down (close 1001).
//
// It registers with the hub before reading the history, so that an event
// stored in between is both in the history and sent by the hub: the event
// id is remembered and the second copy skipped. Only this goroutine writes
// data frames; a second one reads, which is what makes pongs and the
// client's close arrive.
func (s *server) socket(conn *websocket.Conn) {
	opID := conn.Params("id")
	ctx, _ := conn.Locals(localSocketCtx).(context.Context)
	if ctx == nil {
		ctx = context.Background()
	}
	log := s.log.With("operation_id", opID)
	if !s.sockets.acquire() {
		closeSocket(conn, websocket.CloseTryAgainLater, "too many connections")
		return
	}
	defer s.sockets.release()
	s.metrics.SocketOpened()
	defer s.metrics.SocketClosed()
	log.Debug("websocket opened")

	sub := s.hub.subscribe(opID)
	defer s.hub.unsubscribe(sub)

	conn.SetReadLimit(socketReadMax)
	_ = conn.SetReadDeadline(time.Now().Add(pongWait))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(pongWait)) })
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for {
			// Clients have nothing to say; reading keeps the deadline,
			// pongs and the close handshake going.
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
			_ = conn.SetReadDeadline(time.Now().Add(pongWait))
		}
	}()
	// The reader must be gone before the handler returns: fasthttp then
	// recycles the connection's buffers.
	defer func() {
		_ = conn.Close()
		<-readDone
	}()

	hctx, cancel := context.WithTimeout(ctx, storeTimeout)
	_, hist, err := s.current(hctx, opID, true)
	cancel()
	if errors.Is(err, projection.ErrNotFound) {
		// Checked at the upgrade; gone since (trimmed, expired).
		closeSocket(conn, websocket.CloseNormalClosure, "unknown operation")
		return
	}
	if err != nil {
		log.Error("websocket: read the history", "error", err)
		closeSocket(conn, websocket.CloseInternalServerErr, "internal error")
		return
	}

	var st progressState
	seen := make(map[string]struct{}, len(hist)+4)
	for _, f := range hist {
		seen[f.ID] = struct{}{}
		body, err := json.Marshal(f)
		if err != nil {
			log.Error("websocket: encode an event", "error", err)
			continue
		}
		if !writeText(conn, body) {
			return
		}
		st.onEvent(f)
		if f.final() {
			finish(conn, readDone)
			return
		}
		s.followChildren(sub, f)
	}

	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	tick := time.NewTicker(progressTick)
	defer tick.Stop()
	for {
		select {
		case f := <-sub.ch:
			switch {
			case f.event != nil:
				if _, dup := seen[f.event.ID]; dup {
					continue
				}
				seen[f.event.ID] = struct{}{}
				if !writeText(conn, f.body) {
					return
				}
				if f.event.OperationID != opID {
					continue // a child's event (children.go)
				}
				s.followChildren(sub, *f.event)
				st.onEvent(*f.event)
				if f.event.final() {
					finish(conn, readDone)
					return
				}
			case f.progress != nil && f.progress.OperationID != opID:
				if !writeChildProgress(conn, *f.progress) {
					return
				}
			case f.progress != nil:
				if st.accept(*f.progress) && !st.send(conn, time.Now()) {
					return
				}
			}
		case now := <-tick.C:
			if st.due(now) && !st.send(conn, now) {
				return
			}
		case <-ping.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
				return
			}
		case <-sub.gone:
			code := websocket.CloseGoingAway
			if sub.reason == "slow consumer" {
				code = websocket.CloseTryAgainLater
				log.Warn("websocket: closing a slow consumer")
			}
			closeSocket(conn, code, sub.reason)
			return
		case <-readDone:
			log.Debug("websocket: client gone")
			return
		}
	}
}

// writeText writes one text message within writeWait and reports success.
func writeText(conn *websocket.Conn, body []byte) bool {
	_ = conn.SetWriteDeadline(time.Now().Add(writeWait))
	return conn.WriteMessage(websocket.TextMessage, body) == nil
}

// closeSocket sends a close frame; the connection is closed when the
// handler returns.
func closeSocket(conn *websocket.Conn, code int, reason string) {
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(writeWait))
}

// finish ends a socket after the operation's final event: a normal close,
// then up to closeWait for the client's close reply.
func finish(conn *websocket.Conn, readDone <-chan struct{}) {
	closeSocket(conn, websocket.CloseNormalClosure, "operation finished")
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-readDone:
	case <-t.C:
	}
}

// progressState tracks the running stage of one socket's operation: from
// video.resolved the fetch runs, from audio.downloaded the encode, and
// dca.encoded ends both. Progress for an ended stage (a late message) is
// ignored; while a stage runs its last progress (0 % until the stage
// reports) is re-sent so the client hears at least once a second.
type progressState struct {
	cur      *events.Progress
	ended    map[string]bool
	lastSent time.Time
}

func (p *progressState) onEvent(f eventFrame) {
	if p.ended == nil {
		p.ended = map[string]bool{}
	}
	start := func(stage string) {
		if p.cur == nil || p.cur.Stage != stage {
			p.cur = &events.Progress{Type: "progress", OperationID: f.OperationID, Stage: stage}
			p.lastSent = time.Time{}
		}
	}
	switch events.Kind(f.Kind) {
	case events.KindVideoResolved:
		if !p.ended[stageFetch] {
			start(stageFetch)
		}
	case events.KindAudioDownloaded:
		p.ended[stageFetch] = true
		start(stageEncode)
	case events.KindDCAEncoded, events.KindUploadDone, events.KindOperationFailed:
		p.ended[stageFetch], p.ended[stageEncode] = true, true
		p.cur = nil
	}
}

// accept takes a progress message and reports whether to send it now.
func (p *progressState) accept(m events.Progress) bool {
	if p.ended[m.Stage] {
		return false
	}
	p.cur = &m
	return true
}

// due reports whether the running stage's progress is to be re-sent.
func (p *progressState) due(now time.Time) bool {
	return p.cur != nil && now.Sub(p.lastSent) >= progressResend
}

func (p *progressState) send(conn *websocket.Conn, now time.Time) bool {
	body, err := json.Marshal(p.cur)
	if err != nil {
		return false
	}
	p.lastSent = now
	return writeText(conn, body)
}

// recoverSocket is the socket's panic handler: the stack goes to the log,
// the client gets a close 1011.
func (s *server) recoverSocket(conn *websocket.Conn) {
	if r := recover(); r != nil {
		s.log.LogAttrs(context.Background(), slog.LevelError, "websocket handler panicked",
			slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
		closeSocket(conn, websocket.CloseInternalServerErr, "internal error")
	}
}
