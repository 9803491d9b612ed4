package trail

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// decisionCorpus holds decisions with what json.Marshal treats specially: empty and omitted
// fields, nil and empty lists, extras with nil values, strings with HTML, quotes, control
// characters, invalid UTF-8 and U+2028, times in other zones and years json.Marshal refuses.
func decisionCorpus() []*Decision {
	at := time.Date(2026, 12, 1, 20, 35, 45, 123456789, time.UTC)
	full := &Decision{
		Meta:      Meta{APIVersion: APIVersion, Kind: KindDecision, ID: "admission-u1-validating", Time: at, Source: "webhook/gh-0"},
		Component: "validating-webhook", AuditID: "a1", AdmissionUID: "u1", SessionID: "s1",
		Identity: Identity{User: "agent@example.com", UID: "42", Groups: []string{"agents", "system:authenticated"},
			Extra:  map[string][]string{"gatehouse.dev/session-id": {"s1"}, "b": nil, "a": {}, "c": {"x", "y"}},
			Issuer: "https://idp.example", Subject: "sub"},
		Operation:  Operation{Verb: "create", APIGroup: "apps", APIVersion: "v1", Resource: "deployments", Subresource: "scale", Namespace: "ns", Name: "web", Path: "/x"},
		ViaGateway: true, DryRun: true,
		Policy:   Policy{Policy: "default", Rule: "r", Action: "requireApproval", Message: "needs <approval> & \"more\""},
		Admitted: true, ApprovalID: "ap-1",
	}
	return []*Decision{
		{},
		{Meta: Meta{Time: at}},
		full,
		{Meta: Meta{Time: at}, Identity: Identity{Groups: []string{}, Extra: map[string][]string{}}},
		{Meta: Meta{Time: at}, Policy: Policy{Rule: "only-rule", Action: "deny"}},
		{Meta: Meta{Time: at}, Policy: Policy{Policy: "only-policy"}},
		{Meta: Meta{Time: at}, Policy: Policy{Action: "deny", Message: "a\"b\\c<d>e&f\x01\x1f\b\f\n\r\t\x7f/ \"web\" in \"ns\""}},
		{Meta: Meta{Time: at, ID: "\x00\x1f\b\f\t\n\r\"\\/<>&\u2028\u2029\u00e9\U0001F600", Source: "\xff\xfe bad \xc3"},
			Identity: Identity{User: "\xed\xa0\x80", Groups: []string{"", "<g>"}, Extra: map[string][]string{"\xff": {"\x7f"}}}},
		{Meta: Meta{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))}},
		{Meta: Meta{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{Meta: Meta{Time: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{Meta: Meta{Time: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)}},
	}
}

func TestDecisionJSON(t *testing.T) {
	for i, d := range decisionCorpus() {
		want, wantErr := json.Marshal(d)
		got, err := marshal(d)
		if wantErr != nil {
			require.Error(t, err, "case %d", i)
			continue
		}
		require.NoError(t, err, "case %d", i)
		assert.Equal(t, string(want), string(got), "case %d", i)
	}
}

// FuzzDecisionJSON checks that a decision is encoded exactly as json.Marshal encodes it.
func FuzzDecisionJSON(f *testing.F) {
	f.Add("u1", "agent", "g", "k", "v", "default", "r", "msg", "ns", int64(0), true)
	f.Add("<&>", "\xff", "", "\u2028", "\x00", "", "", "", "", int64(-1), false)
	f.Fuzz(func(t *testing.T, id, user, group, key, value, policy, rule, message, ns string, nanos int64, flag bool) {
		d := &Decision{
			Meta:      Meta{APIVersion: APIVersion, Kind: KindDecision, ID: id, Time: time.Unix(0, nanos).UTC()},
			Component: user, AdmissionUID: id, SessionID: value,
			Identity:  Identity{User: user, Groups: []string{group, value}, Extra: map[string][]string{key: {value}, value: nil}, Subject: message},
			Operation: Operation{Verb: rule, Namespace: ns, Name: key},
			Policy:    Policy{Policy: policy, Rule: rule, Action: value, Message: message},
			DryRun:    flag, ViaGateway: !flag, Admitted: flag, ApprovalID: group,
		}
		if flag {
			d.Identity.Groups = nil
		}
		want, wantErr := json.Marshal(d)
		got, err := marshal(d)
		if wantErr != nil {
			require.Error(t, err)
			return
		}
		require.NoError(t, err)
		require.Equal(t, string(want), string(got))
	})
}

// requestCorpus holds request records with what json.Marshal treats specially, as
// decisionCorpus, and the proxy's optional parts: masking with and without detectors, a decision,
// negative and large numbers, the open phase.
func requestCorpus() []*Request {
	at := time.Date(2026, 12, 1, 20, 35, 45, 123456789, time.UTC)
	full := &Request{
		Meta:    Meta{APIVersion: APIVersion, Kind: KindRequest, ID: "0193a-id", Time: at, Source: "proxy/gh-0"},
		AuditID: "a2", HeldAuditID: "a1", SessionID: "s-1",
		Identity: Identity{User: "oidc:alice", UID: "uid-alice", Groups: []string{"oidc:agents", "system:authenticated"},
			Extra: map[string][]string{"z": {"1"}, "b": nil, "a": {}}, Issuer: "https://idp.example", Subject: "alice"},
		Client: "kubectl/v1.36.3", SourceIP: "10.0.0.7",
		Operation: Operation{Verb: "get", APIVersion: "v1", Resource: "secrets", Namespace: "default", Name: "db"},
		Code:      200, DryRun: true, Latency: 1234567, Duration: 2345678, BytesIn: 12, BytesOut: 1 << 40,
		Masking:    &Masking{Fields: 3, Detectors: map[string]int{"secret-data": 2, "<aws>": 1, "\xff": -1}},
		Decision:   &Policy{Policy: "default", Rule: "r", Action: "deny", Message: "no <secrets> & \"more\""},
		ApprovalID: "ap-1", Error: "trail unavailable", Phase: PhaseOpen, RecordingID: "0193a-id",
	}
	return []*Request{
		{},
		{Meta: Meta{Time: at}},
		full,
		{Meta: Meta{Time: at}, Masking: &Masking{}},
		{Meta: Meta{Time: at}, Masking: &Masking{Fields: 1, Detectors: map[string]int{}}},
		{Meta: Meta{Time: at}, Decision: &Policy{}},
		{Meta: Meta{Time: at}, Code: -1, Latency: -5, Duration: 1<<63 - 1, BytesIn: -1 << 63, Operation: Operation{Path: "/version"}},
		{Meta: Meta{Time: at, ID: "\x00\x1f\b\f\t\n\r\"\\/<>&\u2028\u2029\u00e9\U0001F600", Source: "\xff\xfe bad \xc3"},
			Client: "\xed\xa0\x80 <script>", Error: "a\"b\\c<d>e&f\x01\x7f", Identity: Identity{Groups: []string{}, Extra: map[string][]string{}}},
		{Meta: Meta{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))}},
		{Meta: Meta{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{Meta: Meta{Time: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}},
	}
}

func TestRequestJSON(t *testing.T) {
	for i, r := range requestCorpus() {
		want, wantErr := json.Marshal(r)
		got, err := marshal(r)
		if wantErr != nil {
			require.Error(t, err, "case %d", i)
			continue
		}
		require.NoError(t, err, "case %d", i)
		assert.Equal(t, string(want), string(got), "case %d", i)
	}
}

// FuzzRequestJSON checks that a request record is encoded exactly as json.Marshal encodes it.
func FuzzRequestJSON(f *testing.F) {
	f.Add("id", "oidc:alice", "agents", "k", "v", "detector", "kubectl/v1", "ns", int64(0), int64(200), true)
	f.Add("<&>", "\xff", "", "\u2028", "\x00", "", "", "", int64(-1), int64(-1), false)
	f.Fuzz(func(t *testing.T, id, user, group, key, value, detector, client, ns string, nanos, n int64, flag bool) {
		r := &Request{
			Meta:    Meta{APIVersion: APIVersion, Kind: KindRequest, ID: id, Time: time.Unix(0, nanos).UTC(), Source: client},
			AuditID: id, HeldAuditID: value, SessionID: key,
			Identity: Identity{User: user, Groups: []string{group, value}, Extra: map[string][]string{key: {value}, value: nil}, Subject: detector},
			Client:   client, SourceIP: value,
			Operation: Operation{Verb: key, Resource: group, Namespace: ns, Name: value, Path: detector},
			Code:      int(n), DryRun: flag, Latency: time.Duration(nanos), Duration: time.Duration(n), BytesIn: n, BytesOut: nanos,
			ApprovalID: group, Error: detector, Phase: RequestPhase(value), RecordingID: ns,
		}
		if flag {
			r.Identity.Groups = nil
			r.Masking = &Masking{Fields: int(n), Detectors: map[string]int{detector: int(n), key: 1}}
			r.Decision = &Policy{Policy: key, Rule: value, Action: detector, Message: user}
		}
		want, wantErr := json.Marshal(r)
		got, err := marshal(r)
		if wantErr != nil {
			require.Error(t, err)
			return
		}
		require.NoError(t, err)
		require.Equal(t, string(want), string(got))
	})
}
