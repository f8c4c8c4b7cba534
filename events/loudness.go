package events

// LoudnessMeasured says how loud a stored song is: the integrated loudness
// (EBU R128) and the true peak of its DCA's audio, decoded as a player
// decodes it. The encoder publishes it for a dca.encoded that did not carry
// them (a passthrough copies the packets without decoding them, and a DCA
// found stored already is described from its header), from its own
// consumer on dca.encoded (ConsumerEncoderLoudness), once the DCA is
// stored: the measure is off the path to the operation's end, so the event
// usually comes after upload.done. Projections apply it to the song even
// when the operation has ended; it changes nothing of the operation.
//
// Both fields are absent for audio with no loudness (silence).
type LoudnessMeasured struct {
	// Key is the blob key of the DCA measured ("audio/<song_id>.dca").
	Key          string   `json:"key"`
	LoudnessLUFS *float64 `json:"loudness_lufs,omitempty"`
	TruePeakDB   *float64 `json:"true_peak_db,omitempty"`
}

// KindLoudnessMeasured is LoudnessMeasured's kind.
const KindLoudnessMeasured Kind = "loudness.measured"

// TypeLoudnessMeasured is LoudnessMeasured's type.
const TypeLoudnessMeasured = "butakero.loudness.measured.v1"

func (LoudnessMeasured) Kind() Kind   { return KindLoudnessMeasured }
func (LoudnessMeasured) Type() string { return TypeLoudnessMeasured }
