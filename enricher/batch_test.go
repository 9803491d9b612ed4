package enricher

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/masking"
)

// decodeAll decodes messages (compressed ones are recognised by the S2 stream) and returns
// their events and stats.
func decodeAll(t *testing.T, msgs [][]byte) ([]auditEvent, []eventStats) {
	t.Helper()
	var evs []auditEvent
	var sts []eventStats
	for _, m := range msgs {
		if !bytes.HasPrefix(m, []byte(messageHead)) {
			var err error
			m, err = s2.Decode(nil, m)
			require.NoError(t, err)
		}
		var wb wireBatch
		require.NoError(t, decodeBatch(&decoderMem{}, m, &wb))
		evs = append(evs, wb.Items...)
		sts = append(sts, wb.Masking...)
	}
	return evs, sts
}

// packAll packs events into messages of at most maxBytes (0: one uncompressed message).
func packAll(t *testing.T, m *masking.Masker, items [][]byte, maxBytes int, tweak func(*packer)) [][]byte {
	t.Helper()
	var msgs [][]byte
	p := newPacker(m, OriginWebhook, maxBytes, func(b []byte) error {
		msgs = append(msgs, bytes.Clone(b))
		return nil
	})
	if tweak != nil {
		tweak(p)
	}
	for _, it := range items {
		require.NoError(t, p.add(it, ""))
	}
	require.NoError(t, p.flush())
	return msgs
}

func TestPackerMasksEveryEvent(t *testing.T) {
	const secret = "s3cr3t-canary-value-8842"
	m := newMasker(t)
	body := testEventList(0, 20, genOptions{id: "mask", secret: secret, session: "s-1"})
	l, err := splitEventList(body)
	require.NoError(t, err)
	msgs := packAll(t, m, l.Items, 0, nil)
	require.Len(t, msgs, 1)
	all := bytes.Join(msgs, nil)
	assert.NotContains(t, string(all), secret)
	assert.NotContains(t, string(all), base64.StdEncoding.EncodeToString([]byte(secret)))
	assert.True(t, masking.ContainsPlaceholder(all))

	evs, sts := decodeAll(t, msgs)
	require.Len(t, evs, 20)
	for i, ev := range evs {
		assert.Equal(t, genEventID("mask", i), ev.AuditID, "order is kept")
		switch i % 10 {
		case 8: // the Secret read: its data is masked
			assert.Positive(t, sts[i].Fields, "event %d", i)
			assert.Contains(t, string(ev.ResponseObject), `"password":"`)
			assert.NotContains(t, string(ev.ResponseObject), "hunter2")
		case 9: // the exec: --password in the command line
			assert.Positive(t, sts[i].Fields, "event %d", i)
			assert.NotContains(t, ev.RequestURI, secret)
		}
		assert.False(t, sts[i].Truncated)
	}
	// Apart from masked values, events are what kube-apiserver sent.
	var orig auditEvent
	require.NoError(t, json.Unmarshal(l.Items[6], &orig))
	assert.Equal(t, orig, evs[6])
}

func genEventID(prefix string, i int) string {
	var ev auditEvent
	_ = json.Unmarshal(genEvent(i, genOptions{id: prefix}), &ev)
	return ev.AuditID
}

func TestPackerSplitsIntoMessages(t *testing.T) {
	m := newMasker(t)
	body := testEventList(0, 300, genOptions{id: "split"})
	l, err := splitEventList(body)
	require.NoError(t, err)
	const limit = 16 << 10
	msgs := packAll(t, m, l.Items, limit, nil)
	require.Greater(t, len(msgs), 1, "a batch larger than a message is split")
	again := packAll(t, m, l.Items, limit, nil)
	assert.Equal(t, msgs, again, "the same events pack into the same messages: a retry gets the same message IDs")
	for _, msg := range msgs {
		assert.LessOrEqual(t, len(msg), limit)
	}
	assert.Less(t, len(bytes.Join(msgs, nil)), len(body)/3, "messages are compressed")
	evs, _ := decodeAll(t, msgs)
	require.Len(t, evs, 300)
	for i, ev := range evs {
		assert.Equal(t, genEventID("split", i), ev.AuditID)
	}
}

// TestPackerPoolReusesBuffers checks that packers on kept buffers pack exactly as fresh ones
// do, across batches of different sizes and a batch that failed halfway, that buffers are kept,
// and that buffers grown far beyond a message are not.
func TestPackerPoolReusesBuffers(t *testing.T) {
	m := newMasker(t)
	const limit = 16 << 10
	var pool packerPool
	packPooled := func(items [][]byte) [][]byte {
		t.Helper()
		var msgs [][]byte
		p := newPackerWith(pool.get(), m, OriginWebhook, limit, func(b []byte) error {
			msgs = append(msgs, bytes.Clone(b))
			return nil
		})
		defer pool.put(p.packerBuffers)
		for _, it := range items {
			require.NoError(t, p.add(it, ""))
		}
		require.NoError(t, p.flush())
		return msgs
	}
	for i, n := range []int{300, 7, 120, 1} {
		l, err := splitEventList(testEventList(0, n, genOptions{id: fmt.Sprintf("pool-%d", i), secret: "s3cr3t-pool-canary"}))
		require.NoError(t, err)
		assert.Equal(t, packAll(t, m, l.Items, limit, nil), packPooled(l.Items), "batch %d of %d events", i, n)
	}

	// A batch abandoned halfway (the spool failed) leaves nothing behind for the next one.
	l, err := splitEventList(testEventList(0, 50, genOptions{id: "pool-abandoned"}))
	require.NoError(t, err)
	p := newPackerWith(pool.get(), m, OriginWebhook, limit, func([]byte) error { return errors.New("spool full") })
	for _, it := range l.Items[:20] {
		require.NoError(t, p.add(it, ""))
	}
	pool.put(p.packerBuffers)
	l, err = splitEventList(testEventList(0, 40, genOptions{id: "pool-next"}))
	require.NoError(t, err)
	assert.Equal(t, packAll(t, m, l.Items, limit, nil), packPooled(l.Items))

	small := &packerBuffers{offsets: []int{0}, buf: make([]byte, 0, messageTarget)}
	assert.True(t, small.reusable(), "buffers of a message's size are kept")
	big := &packerBuffers{offsets: []int{0}, env: make([]byte, 0, maxPooledBuffer+1)}
	assert.False(t, big.reusable(), "a buffer grown beyond maxPooledBuffer is not kept")
}

// TestPackerEmitsAsItGoes checks that a batch is emitted in messages as its events arrive, so
// that the packer holds one message's events, not the batch's.
func TestPackerEmitsAsItGoes(t *testing.T) {
	m := newMasker(t)
	var emittedAt []int
	added := 0
	p := newPacker(m, OriginWebhook, 1<<20, func([]byte) error {
		emittedAt = append(emittedAt, added)
		return nil
	})
	p.target = 32 << 10
	for i := range 500 {
		require.NoError(t, p.add(genEvent(i, genOptions{id: "stream"}), ""))
		added++
		assert.LessOrEqual(t, len(p.buf), p.target+4<<10, "the packer holds about one message")
	}
	require.NoError(t, p.flush())
	require.Greater(t, len(emittedAt), 5)
	assert.Less(t, emittedAt[0], 100, "the first message leaves long before the batch ends")
	assert.Equal(t, 500, p.events)
}

func TestPackerTruncatesEventsLargerThanAMessage(t *testing.T) {
	m := newMasker(t)
	random := make([]byte, 30<<10)
	_, _ = rand.Read(random)
	big := base64.StdEncoding.EncodeToString(random) // incompressible
	ev := `{"level":"RequestResponse","auditID":"big-1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/a/configmaps","verb":"create",` +
		`"user":{"username":"alice"},"objectRef":{"resource":"configmaps","namespace":"a","name":"big","apiVersion":"v1"},"responseStatus":{"code":201},` +
		`"requestObject":{"kind":"ConfigMap","apiVersion":"v1","data":{"blob":"` + big + `"}},"responseObject":{"kind":"ConfigMap","apiVersion":"v1","data":{"blob":"` + big + `"}},` +
		`"requestReceivedTimestamp":"2026-11-26T02:00:00.000001Z","stageTimestamp":"2026-11-26T02:00:00.000002Z","annotations":{"authorization.k8s.io/decision":"allow"}}`
	msgs := packAll(t, m, [][]byte{[]byte(ev), genEvent(1, genOptions{id: "small"})}, 32<<10, nil)
	evs, sts := decodeAll(t, msgs)
	require.Len(t, evs, 2)
	assert.True(t, sts[0].Truncated)
	assert.Empty(t, evs[0].RequestObject)
	assert.Empty(t, evs[0].ResponseObject)
	assert.Equal(t, "true", evs[0].Annotations[AnnotationTruncated])
	assert.Equal(t, "allow", evs[0].Annotations["authorization.k8s.io/decision"], "other annotations stay")
	assert.Equal(t, "big-1", evs[0].AuditID)
	assert.Equal(t, int32(201), evs[0].ResponseStatus.Code)
	assert.False(t, sts[1].Truncated)
}

func TestPackerMarksCutEvents(t *testing.T) {
	m := newMasker(t)
	var msgs [][]byte
	p := newPacker(m, OriginWebhook, 0, func(b []byte) error { msgs = append(msgs, bytes.Clone(b)); return nil })
	require.NoError(t, p.add(genEvent(3, genOptions{id: "cut"}), "event larger than 4194304 bytes"))
	require.NoError(t, p.flush())
	evs, sts := decodeAll(t, msgs)
	require.Len(t, evs, 1)
	assert.True(t, sts[0].Truncated)
	assert.Equal(t, "true", evs[0].Annotations[AnnotationTruncated])
	assert.Equal(t, "event larger than 4194304 bytes", evs[0].Annotations[AnnotationTruncatedReason])
	assert.Equal(t, "allow", evs[0].Annotations["authorization.k8s.io/decision"], "other annotations stay")
	assert.Equal(t, 1, p.truncated)
}

func TestPackerRefusesMalformedEvents(t *testing.T) {
	m := newMasker(t)
	p := newPacker(m, OriginWebhook, 0, func([]byte) error { return nil })
	err := p.add([]byte(`{"auditID":"x","stage":}`), "")
	require.ErrorIs(t, err, ErrMalformed)
}

func TestMaskList(t *testing.T) {
	const secret = "raw-list-canary-5521"
	m := newMasker(t)
	tests := []struct {
		name    string
		data    []byte
		want    int
		wantErr bool
	}{
		{"EventList", testEventList(0, 10, genOptions{id: "raw", secret: secret}), 10, false},
		{"forged envelope", []byte(messageHead + `"origin":"webhook","items":[` + string(genEvent(8, genOptions{id: "forged", secret: secret})) + `],"masking":[{}]}`), 1, false},
		{"empty", []byte(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[]}`), 0, false},
		{"not an EventList", []byte(`{"kind":"PodList","apiVersion":"v1","items":[]}`), 0, true},
		{"malformed", []byte(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"a":}]}`), 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg, n, err := maskList(m, tc.data, OriginUnverified, DefaultMaxEventBytes)
			if tc.wantErr {
				require.ErrorIs(t, err, ErrMalformed)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, n)
			assert.NotContains(t, string(msg), secret)
			assert.NotContains(t, string(msg), base64.StdEncoding.EncodeToString([]byte(secret)))
			var wb wireBatch
			require.NoError(t, decodeBatch(&decoderMem{}, msg, &wb))
			assert.Len(t, wb.Items, tc.want)
			assert.Equal(t, OriginUnverified, wb.Origin)
		})
	}
}

func TestEventKeyTellsRequestsApart(t *testing.T) {
	var a, b auditEvent
	require.NoError(t, json.Unmarshal(genEvent(1, genOptions{id: "k"}), &a))
	require.NoError(t, json.Unmarshal(genEvent(1, genOptions{id: "k"}), &b))
	assert.Equal(t, eventKey(&a), eventKey(&b), "the same event has the same key")
	b.RequestURI += "&watch=true"
	assert.NotEqual(t, eventKey(&a), eventKey(&b), "another request under the same Audit-ID has another key")
}

func TestGatewayExtrasTrust(t *testing.T) {
	var ev auditEvent
	require.NoError(t, json.Unmarshal(genEvent(1, genOptions{id: "x", session: "s-9"}), &ev))
	assert.Equal(t, "s-9", gatewayExtras(&ev, nil).SessionID, "no trusted users: every impersonator")
	assert.Equal(t, "s-9", gatewayExtras(&ev, map[string]bool{"system:serviceaccount:gatehouse:gatehouse-proxy": true}).SessionID)
	assert.Empty(t, gatewayExtras(&ev, map[string]bool{"someone-else": true}).SessionID, "extras set by another impersonator are not the gateway's")
	ev.ImpersonatedUser = nil
	assert.Empty(t, gatewayExtras(&ev, nil).SessionID)
}

// TestEventKeyIsFNV checks eventKey against hash/fnv over the same bytes: rows stored before and
// after a change of its implementation must get the same key, or a batch delivered again would be
// stored twice.
func TestEventKeyIsFNV(t *testing.T) {
	reference := func(ev *auditEvent) uint64 {
		h := fnv.New64a()
		var ts [16]byte
		binary.LittleEndian.PutUint64(ts[:8], uint64(ev.RequestReceivedTimestamp.UnixNano()))
		binary.LittleEndian.PutUint64(ts[8:], uint64(ev.StageTimestamp.UnixNano()))
		h.Write(ts[:])
		for _, s := range append([]string{ev.Verb, ev.RequestURI, ev.User.Username}, func() []string {
			var out []string
			if ev.ImpersonatedUser != nil {
				out = append(out, ev.ImpersonatedUser.Username)
			}
			return append(append(out, ev.SourceIPs...), ev.UserAgent)
		}()...) {
			h.Write([]byte(s))
			h.Write([]byte{0})
		}
		return h.Sum64()
	}
	var wb wireBatch
	require.NoError(t, jsonUnmarshal([]byte(`{"items":`+string(func() []byte {
		l, err := splitEventList(testEventList(0, 30, genOptions{id: "key", session: "s-1"}))
		require.NoError(t, err)
		return append(append([]byte("["), bytes.Join(l.Items, []byte(","))...), ']')
	}())+`}`), &wb))
	wb.Items = append(wb.Items, auditEvent{}, auditEvent{Verb: "get", SourceIPs: []string{"", "ü"}, StageTimestamp: time.Unix(-5, 3)})
	for i := range wb.Items {
		assert.Equal(t, reference(&wb.Items[i]), eventKey(&wb.Items[i]), "event %d", i)
	}
}

// TestAppendStatsIsJSON holds appendStats to what encoding/json makes of the same stats.
func TestAppendStatsIsJSON(t *testing.T) {
	for _, s := range []eventStats{
		{},
		{Detectors: map[string]int{"jwt": 1}}, // nothing counted: "{}" as before
		{Fields: 1, Detectors: map[string]int{"secret-data": 1}},
		{Fields: 3, Detectors: map[string]int{"jwt": 1, "aws-access-key-id": 2, "b": 0}, Truncated: true},
		{Truncated: true},
		{Fields: -2, Truncated: true},
		{Fields: 2, Detectors: map[string]int{}},
		{Fields: 4, Detectors: map[string]int{"<a&b>": 1, "q\"uote": 1, "ü\u2028": 1, "bad\xff": 1}},
	} {
		want := []byte("{}")
		if s.Fields != 0 || s.Truncated {
			var err error
			want, err = json.Marshal(s)
			require.NoError(t, err)
		}
		assert.Equal(t, string(want), string(appendStats([]byte("x"), s)[1:]), "%+v", s)
	}
}
