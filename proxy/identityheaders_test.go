package proxy

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/authn"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/masking"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// setIdentityHeadersBefore is setIdentityHeaders as it was written with http.Header.Set and Add
// and a map of the Gatehouse extras: the reference the faster version must equal.
func (p *Proxy) setIdentityHeadersBefore(h http.Header, st *requestState) {
	h.Set("Impersonate-User", st.id.User)
	for _, g := range st.id.Groups {
		h.Add("Impersonate-Group", g)
	}
	if st.id.UID != "" {
		h.Set("Impersonate-Uid", st.id.UID)
	}
	for k, vs := range st.id.Extra {
		for _, v := range vs {
			h.Add(extraHeader(k), v)
		}
	}
	m := map[string]string{
		identity.ExtraSessionID: st.session,
		identity.ExtraIssuer:    st.id.Issuer,
		identity.ExtraSubject:   st.id.Subject,
	}
	if c := clientName(st.client); c != "" {
		m[identity.ExtraClient] = c
	}
	if st.hold != "" {
		m[identity.ExtraHold] = st.hold
	}
	if st.opts.reason != "" {
		masked, _ := p.opts.Masker.Text(nil, []byte(st.opts.reason))
		m[identity.ExtraReason] = string(masked)
	}
	for k, v := range m {
		h.Set(extraHeader(k), v)
	}
}

// TestSetIdentityHeadersAsBefore: the impersonation headers equal what Set and Add wrote, for
// identities with and without groups, UID and extras of their own (a client's impersonation
// brings gatehouse.dev/original-user), a hold, a reason with a secret in it, and headers already
// there (a client's that rewrite did not delete, which must be replaced or added to as before).
// A later Add to one of the headers set must not change another.
func TestSetIdentityHeadersAsBefore(t *testing.T) {
	m, err := masking.New(masking.Config{Key: []byte("gatehouse-test-masking-key-0001")})
	require.NoError(t, err)
	p := &Proxy{opts: Options{Masker: m}}
	base := trail.Identity{User: "oidc:alice", Groups: []string{"oidc:dev", "oidc:ops"}, UID: "uid-alice", Issuer: "https://issuer.example.com", Subject: "alice"}
	tests := []struct {
		name   string
		id     func(trail.Identity) trail.Identity
		st     func(*requestState)
		before http.Header
	}{
		{name: "groups and UID"},
		{name: "no groups, no UID", id: func(i trail.Identity) trail.Identity { i.Groups, i.UID = nil, ""; return i }},
		{name: "one group", id: func(i trail.Identity) trail.Identity { i.Groups = i.Groups[:1]; return i }},
		{name: "extras of its own", id: func(i trail.Identity) trail.Identity {
			i.Extra = map[string][]string{"example.com/team": {"a", "b"}, "scopes": {"read"}, identity.ExtraOriginalUser: {"oidc:bob"}}
			return i
		}},
		{name: "an extra of its own under a Gatehouse key", id: func(i trail.Identity) trail.Identity {
			i.Extra = map[string][]string{identity.ExtraSessionID: {"forged"}}
			return i
		}},
		{name: "no client name", st: func(st *requestState) { st.client = "" }},
		{name: "held, with a reason", st: func(st *requestState) {
			st.hold = "team/no-deletes"
			st.opts.reason = "rotate password=hunter2hunter2 now"
		}},
		{name: "headers already there", before: http.Header{
			"Impersonate-User": {"mallory"}, "Impersonate-Group": {"system:masters"}, "Impersonate-Uid": {"0"},
			"Impersonate-Extra-Gatehouse.dev%2fsession-Id": {"forged"}, "Accept": {"application/json"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := base
			// Room past the groups: a header sharing their array would write into it.
			id.Groups = append(make([]string, 0, len(base.Groups)+4), base.Groups...)
			if tc.id != nil {
				id = tc.id(id)
			}
			st := &requestState{id: &authn.Identity{Identity: id}, session: "t-0123456789abcdef0123", client: "kubectl/v1.36.3 (linux/amd64)"}
			if tc.st != nil {
				tc.st(st)
			}
			want, got := tc.before.Clone(), tc.before.Clone()
			if want == nil {
				want, got = http.Header{}, http.Header{}
			}
			p.setIdentityHeadersBefore(want, st)
			p.setIdentityHeaders(got, st)
			assert.Equal(t, want, got)

			// Each header owns its values: adding to one leaves the others as they were.
			for name := range got {
				others := got.Clone()
				delete(others, name)
				got.Add(name, "added")
				for other, vs := range others {
					assert.Equal(t, vs, got[other], "adding to %s changed %s", name, other)
				}
			}
			// The identity is cached across requests: no header shares its groups' array.
			groups := st.id.Groups[:cap(st.id.Groups)]
			assert.NotContains(t, groups, "added", "the identity's groups were written to")
		})
	}
}
