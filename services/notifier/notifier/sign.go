package notifier

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
)

// Sign returns the Standard Webhooks signature header value of one
// delivery: "v1," and the base64 of HMAC-SHA256(key, id.timestamp.body),
// the timestamp in Unix seconds. key is the decoded WEBHOOK_SECRET
// (config.ParseWebhookSecret). The id and the timestamp are Butakero's
// own (no '.' in either), never a user's.
func Sign(key []byte, id string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(timestamp, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
