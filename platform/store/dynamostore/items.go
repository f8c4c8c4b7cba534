package dynamostore

import (
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/butakero/butakero/platform/projection"
)

// Items hold one attribute per field, named as the field's JSON name.
// Empty strings and zero numbers are left out (song_id and the catalog's
// keys must be, being index keys), and read back as empty and zero.

func encodeOperation(op projection.Operation) map[string]types.AttributeValue {
	m := map[string]types.AttributeValue{}
	putStr(m, songIDAttr, op.SongID)
	putStr(m, "status", op.Status)
	putStr(m, "message", op.Message)
	putStr(m, "data", op.Data)
	putStr(m, "processing_date", op.ProcessingDate)
	m["success"] = &types.AttributeValueMemberBOOL{Value: op.Success}
	putNum(m, "attempts", int64(op.Attempts))
	putNum(m, "failures", int64(op.Failures))
	putStr(m, "stage", op.Stage)
	putStr(m, "query", op.Query)
	putStr(m, "error_code", op.ErrorCode)
	putStr(m, createdAttr, op.CreatedAt)
	putStr(m, "updated_at", op.UpdatedAt)
	return m
}

func decodeOperation(m map[string]types.AttributeValue) (projection.Operation, error) {
	d := decoder{m: m}
	op := projection.Operation{
		ID:             d.str(KeyAttr),
		SongID:         d.str(songIDAttr),
		Status:         d.str("status"),
		Message:        d.str("message"),
		Data:           d.str("data"),
		ProcessingDate: d.str("processing_date"),
		Success:        d.bool("success"),
		Attempts:       int(d.num("attempts")),
		Failures:       int(d.num("failures")),
		Stage:          d.str("stage"),
		Query:          d.str("query"),
		ErrorCode:      d.str("error_code"),
		CreatedAt:      d.str(createdAttr),
		UpdatedAt:      d.str("updated_at"),
		LastSeq:        uint64(d.num(SeqAttr)),
	}
	if d.err != nil {
		return projection.Operation{}, fmt.Errorf("dynamostore: decode operation %q: %w", op.ID, d.err)
	}
	return op, nil
}

func encodeSong(s projection.Song) map[string]types.AttributeValue {
	m := map[string]types.AttributeValue{}
	putStr(m, "title", s.Title)
	putNum(m, "duration_ms", s.DurationMs)
	putStr(m, "url", s.URL)
	putStr(m, "thumbnail_url", s.ThumbnailURL)
	putStr(m, "channel", s.Channel)
	putStr(m, "source", s.Source)
	putStr(m, "dca_key", s.DCAKey)
	putStr(m, "dca_location", s.DCALocation)
	putNum(m, "dca_size", s.DCASize)
	putNum(m, "dca_frames", s.DCAFrames)
	putStr(m, "mode", s.Mode)
	putStr(m, "mode_reason", s.ModeReason)
	putFloat(m, "loudness_lufs", s.LoudnessLUFS)
	putFloat(m, "true_peak_db", s.TruePeakDB)
	putStr(m, "updated_at", s.UpdatedAt)
	// The catalog index (sparse): the stored songs, in normalized-title
	// order. A song in progress or that only ever failed has no catalog
	// attribute and is not in the index. The normalized channel is kept
	// for the search's filter.
	if s.Stored() {
		m[catalogAttr] = str(catalogValue)
		m[titleKeyAttr] = str(titleKey(s.Title, s.ID))
		putStr(m, "title_norm", projection.NormalizeTitle(s.Title))
		putStr(m, "channel_norm", projection.NormalizeTitle(s.Channel))
	}
	return m
}

func decodeSong(m map[string]types.AttributeValue) (projection.Song, error) {
	d := decoder{m: m}
	s := projection.Song{
		ID:           d.str(KeyAttr),
		Title:        d.str("title"),
		DurationMs:   d.num("duration_ms"),
		URL:          d.str("url"),
		ThumbnailURL: d.str("thumbnail_url"),
		Channel:      d.str("channel"),
		Source:       d.str("source"),
		DCAKey:       d.str("dca_key"),
		DCALocation:  d.str("dca_location"),
		DCASize:      d.num("dca_size"),
		DCAFrames:    d.num("dca_frames"),
		Mode:         d.str("mode"),
		ModeReason:   d.str("mode_reason"),
		LoudnessLUFS: d.float("loudness_lufs"),
		TruePeakDB:   d.float("true_peak_db"),
		UpdatedAt:    d.str("updated_at"),
		LastSeq:      uint64(d.num(SeqAttr)),
	}
	if d.err != nil {
		return projection.Song{}, fmt.Errorf("dynamostore: decode song %q: %w", s.ID, d.err)
	}
	return s, nil
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func number(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func putStr(m map[string]types.AttributeValue, k, v string) {
	if v != "" {
		m[k] = str(v)
	}
}

func putNum(m map[string]types.AttributeValue, k string, v int64) {
	if v != 0 {
		m[k] = number(v)
	}
}

// putFloat stores a measure that is known (v not nil).
func putFloat(m map[string]types.AttributeValue, k string, v *float64) {
	if v != nil {
		m[k] = &types.AttributeValueMemberN{Value: strconv.FormatFloat(*v, 'f', -1, 64)}
	}
}

// intAttr reads number attribute k, reporting whether it is there.
func intAttr(m map[string]types.AttributeValue, k string) (int64, bool) {
	n, ok := m[k].(*types.AttributeValueMemberN)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(n.Value, 10, 64)
	return v, err == nil
}

// decoder reads attributes, remembering the first one of the wrong type.
type decoder struct {
	m   map[string]types.AttributeValue
	err error
}

func (d *decoder) fail(k string, v types.AttributeValue) {
	if d.err == nil {
		d.err = fmt.Errorf("attribute %s has type %T", k, v)
	}
}

func (d *decoder) str(k string) string {
	switch v := d.m[k].(type) {
	case nil:
		return ""
	case *types.AttributeValueMemberS:
		return v.Value
	default:
		d.fail(k, v)
		return ""
	}
}

// float reads number attribute k as a float, nil when it is absent.
func (d *decoder) float(k string) *float64 {
	switch v := d.m[k].(type) {
	case nil:
		return nil
	case *types.AttributeValueMemberN:
		f, err := strconv.ParseFloat(v.Value, 64)
		if err != nil {
			if d.err == nil {
				d.err = fmt.Errorf("attribute %s: %w", k, err)
			}
			return nil
		}
		return &f
	default:
		d.fail(k, v)
		return nil
	}
}

func (d *decoder) num(k string) int64 {
	switch v := d.m[k].(type) {
	case nil:
		return 0
	case *types.AttributeValueMemberN:
		n, err := strconv.ParseInt(v.Value, 10, 64)
		if err != nil && d.err == nil {
			d.err = fmt.Errorf("attribute %s: %w", k, err)
		}
		return n
	default:
		d.fail(k, v)
		return 0
	}
}

func (d *decoder) bool(k string) bool {
	switch v := d.m[k].(type) {
	case nil:
		return false
	case *types.AttributeValueMemberBOOL:
		return v.Value
	default:
		d.fail(k, v)
		return false
	}
}
