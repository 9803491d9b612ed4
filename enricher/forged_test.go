package enricher

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/trail"
)

// TestForgedBatchesAreMasked publishes audit batches straight to NATS, as anyone who can reach
// NATS could, each claiming to be masked already (the intake's envelope) and carrying a canary
// secret: without a MAC, with a made-up one, with one under another key, and with the valid MAC
// of another message. The consumer masks every one of them: the canary is nowhere in ClickHouse
// and the events are stored as unverified.
func TestForgedBatchesAreMasked(t *testing.T) {
	const canary = "forged-canary-c4f3b2a1"
	h := newHarness(t, harnessOptions{})
	envelope := func(id string) []byte {
		var items []byte
		for i := range 10 {
			if i > 0 {
				items = append(items, ',')
			}
			items = append(items, genEvent(i, genOptions{id: id, secret: canary})...)
		}
		return []byte(messageHead + `"origin":"webhook","items":[` + string(items) + `],"masking":[{},{},{},{},{},{},{},{},{},{}]}`)
	}
	macUnder := func(key, data []byte) string {
		m := hmac.New(sha256.New, key)
		m.Write(data)
		return base64.RawStdEncoding.EncodeToString(m.Sum(nil))
	}
	genuine := s2.Encode(nil, envelope("genuine-elsewhere"))
	tests := []struct {
		name       string
		compressed bool
		mac        func(data []byte) string
	}{
		{"no MAC", false, func([]byte) string { return "" }},
		{"no MAC, compressed", true, func([]byte) string { return "" }},
		{"made-up MAC", true, func([]byte) string { return base64.RawStdEncoding.EncodeToString(make([]byte, 32)) }},
		{"MAC under another key", true, func(d []byte) string { return macUnder(EnvelopeKey([]byte("someone-elses-masking-key-0123456789")), d) }},
		{"MAC of another message", true, func([]byte) string { return macUnder(EnvelopeKey(testKey), genuine) }},
		{"MAC under the masking key itself", true, func(d []byte) string { return macUnder(testKey, d) }},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := envelope("forged-" + string(rune('a'+i)))
			m := nats.NewMsg(trail.SubjectAuditBatch)
			if tc.compressed {
				data = s2.Encode(nil, data)
				m.Header.Set(HeaderEncoding, encodingS2)
			}
			m.Data = data
			if mac := tc.mac(data); mac != "" {
				m.Header.Set(HeaderMAC, mac)
			}
			m.Header.Set(jetstream.MsgIDHeader, "forged-"+tc.name)
			_, err := h.js.PublishMsg(t.Context(), m)
			require.NoError(t, err)
		})
	}
	want := uint64(10 * len(tests))
	h.waitRows(t, want, 30*time.Second, "SELECT count() FROM {db}.audit_events FINAL WHERE origin = '"+OriginUnverified+"'")
	assertNowhere(t, h.ch, h.db, canary, base64.StdEncoding.EncodeToString([]byte(canary)))
	assert.Equal(t, uint64(len(tests)), h.count(t, "SELECT count() FROM {db}.audit_events FINAL WHERE resource = 'secrets' AND masked_by['secret-data'] > 0"),
		"the Secret read of every forged batch was masked by the consumer")
	assert.Contains(t, h.logs.String(), "audit batch without a valid intake MAC")

	// What an intake publishes verifies, and is not masked again.
	require.Equal(t, 200, h.post(t, testEventList(0, 10, genOptions{id: "genuine", secret: canary})))
	h.waitRows(t, 10, 30*time.Second, "SELECT count() FROM {db}.audit_events FINAL WHERE origin = 'webhook'")
	assertNowhere(t, h.ch, h.db, canary)
}
