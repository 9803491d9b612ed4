package trail

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDecodeRoundTrip(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	tests := []struct {
		name string
		rec  Record
	}{
		{"request", &Request{
			Meta:      Meta{ID: "a1", Time: at, Source: "proxy/x"},
			AuditID:   "a1",
			SessionID: "s1",
			Identity:  Identity{User: "alice", Groups: []string{"dev"}, Issuer: "https://idp", Subject: "123"},
			Operation: Operation{Verb: "get", Resource: "secrets", Namespace: "default", Name: "db"},
			Code:      200,
			Latency:   3 * time.Millisecond,
			Masking:   &Masking{Fields: 2, Detectors: map[string]int{"secret-data": 2}},
		}},
		{"session", &Session{Meta: Meta{ID: "s1-start", Time: at}, SessionID: "s1", Event: SessionStarted, Started: at, LastActivity: at}},
		{"approval", &Approval{
			Meta: Meta{ID: "ap-1-approved", Time: at}, ApprovalID: "ap-1", Event: ApprovalApproved, SessionID: "s1",
			Requester: Identity{User: "agent"}, Operation: Operation{Verb: "create", Resource: "clusterrolebindings", Name: "x"},
			Fingerprint: "abc", Required: 2, Actor: "bob", Approvers: []string{"alice", "bob"}, Expires: at,
		}},
		{"decision", &Decision{
			Meta: Meta{ID: "d1", Time: at}, Component: "validating-webhook", AdmissionUID: "u1",
			Policy: Policy{Policy: "default", Rule: "no-exec-privileged", Action: "deny", Message: "privileged"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, complete(tc.rec))
			data, err := json.Marshal(tc.rec)
			require.NoError(t, err)
			got, err := Decode(data)
			require.NoError(t, err)
			assert.Equal(t, tc.rec, got)
			assert.Equal(t, APIVersion, got.Header().APIVersion)
		})
	}
}

func TestRecordJSONShape(t *testing.T) {
	rec := &Request{Meta: Meta{ID: "x", Time: time.Unix(0, 0)}, AuditID: "x", Code: 403, Latency: time.Millisecond}
	require.NoError(t, complete(rec))
	data, err := json.Marshal(rec)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m))
	assert.Equal(t, "trail.gatehouse.dev/v1", m["apiVersion"])
	assert.Equal(t, "Request", m["kind"])
	assert.Equal(t, float64(1e6), m["latencyNs"], "durations are integer nanoseconds")
	assert.Equal(t, "1970-01-01T00:00:00Z", m["time"])
	assert.NotContains(t, m, "masking", "optional parts are omitted when empty")
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		unknown bool
	}{
		{"not json", `{`, false},
		{"other version", `{"apiVersion":"trail.gatehouse.dev/v2","kind":"Request"}`, true},
		{"unknown kind", `{"apiVersion":"trail.gatehouse.dev/v1","kind":"Gossip"}`, true},
		{"wrong field type", `{"apiVersion":"trail.gatehouse.dev/v1","kind":"Request","code":"x"}`, false},
		// Errors are logged and stored: they say where, never the value found there.
		{"number for a string", `{"apiVersion":"trail.gatehouse.dev/v1","kind":"Request","sessionID":4815162342}`, false},
		{"huge number", `{"apiVersion":"trail.gatehouse.dev/v1","kind":"Request","code":4815162342000000000000}`, false},
		{"not a time", `{"apiVersion":"trail.gatehouse.dev/v1","kind":"Request","time":"4815162342-hunter2"}`, false},
		{"header type", `{"apiVersion":"trail.gatehouse.dev/v1","kind":4815162342}`, false},
		{"long kind", `{"apiVersion":"trail.gatehouse.dev/v1","kind":"` + strings.Repeat("x", 200) + `4815162342"}`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.data))
			require.Error(t, err)
			assert.Equal(t, tc.unknown, errors.Is(err, ErrUnknownKind))
			assert.NotContains(t, err.Error(), "4815162342", "the value found")
		})
	}
}

func TestSubject(t *testing.T) {
	tests := []struct {
		rec  Record
		want string
	}{
		{&Request{SessionID: "s-1"}, "gatehouse.trail.v1.request.s-1"},
		{&Request{}, "gatehouse.trail.v1.request._"},
		{&Session{SessionID: "a.b*>c d"}, "gatehouse.trail.v1.session.a_b__c_d"},
		{&Decision{SessionID: "s:1"}, "gatehouse.trail.v1.decision.s:1"},
	}
	for _, tc := range tests {
		got, err := Subject(tc.rec)
		require.NoError(t, err)
		assert.Equal(t, tc.want, got)
	}
	assert.Equal(t, "gatehouse.trail.v1.request.*", SubjectAll(KindRequest))
	assert.Equal(t, "gatehouse.trail.v1.*.s-1", SubjectSession("s-1"))
}

func TestCompleteFillsHeader(t *testing.T) {
	rec := &Request{}
	require.NoError(t, complete(rec))
	assert.Equal(t, KindRequest, rec.Kind)
	assert.NotEmpty(t, rec.ID)
	assert.False(t, rec.Time.IsZero())
	assert.Equal(t, time.UTC, rec.Time.Location())
}
