package approvals

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAssembleRefusesContradictions: parts with valid MACs (written by a holder of the key, the
// webhook or the console) that contradict each other are refused all the same: a request that
// carries its own state or grant, a decision that is not one, a use without a grant.
func TestAssembleRefusesContradictions(t *testing.T) {
	macKey := []byte("0123456789abcdef0123456789abcdef")
	id := "ap-aaaaaaaaaaaaaaaa"
	exp := time.Now().Add(time.Hour)
	build := func(req Request, dec *decisionRecord, use *useRecord) *stored {
		st := &stored{id: id}
		data, err := json.Marshal(req)
		require.NoError(t, err)
		value, _ := seal(macKey, typeRequest, key(PrefixRequest, id), nil, data)
		require.NoError(t, st.set(PrefixRequest, value, 1))
		if dec != nil {
			data, _ := json.Marshal(dec)
			value, _ := seal(macKey, typeDecision, key(PrefixDecision, id), st.req.MAC, data)
			require.NoError(t, st.set(PrefixDecision, value, 2))
		}
		if use != nil {
			data, _ := json.Marshal(use)
			value, _ := seal(macKey, typeUse, key(PrefixUse, id), st.req.MAC, data)
			require.NoError(t, st.set(PrefixUse, value, 3))
		}
		return st
	}
	base := Request{ID: id, Fingerprint: "fp", ApproverGroups: []string{"a"}, Required: 1}
	approved := &decisionRecord{ID: id, State: StateApproved, GrantExpires: &exp, Seq: 1}
	tests := []struct {
		name string
		st   *stored
		want State // "" when refused
	}{
		{"a pending request", build(base, nil, nil), StatePending},
		{"approved", build(base, approved, nil), StateApproved},
		{"used", build(base, approved, &useRecord{ID: id, UsedAt: time.Now()}), StateUsed},
		{"a request carrying a state", build(func() Request { r := base; r.State = StateApproved; return r }(), nil, nil), ""},
		{"a request carrying a grant", build(func() Request { r := base; r.Grant = &Grant{Expires: exp}; return r }(), nil, nil), ""},
		{"a request under another ID", build(func() Request { r := base; r.ID = "ap-bbbbbbbbbbbbbbbb"; return r }(), nil, nil), ""},
		{"approved without a grant", build(base, &decisionRecord{ID: id, State: StateApproved, Seq: 1}, nil), ""},
		{"a grant while pending", build(base, &decisionRecord{ID: id, State: StatePending, GrantExpires: &exp, Seq: 1}, nil), ""},
		{"a state decisions never write", build(base, &decisionRecord{ID: id, State: StateUsed, GrantExpires: &exp, Seq: 1}, nil), ""},
		{"a use without a grant", build(base, nil, &useRecord{ID: id, UsedAt: time.Now()}), ""},
		{"a use of a denied request", build(base, &decisionRecord{ID: id, State: StateDenied, Seq: 1}, &useRecord{ID: id}), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := tc.st.assemble(macKey)
			if tc.want == "" {
				require.ErrorIs(t, err, ErrTampered)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, r.State)
			_, err = tc.st.assemble([]byte("another key, 32 bytes long......"))
			assert.ErrorIs(t, err, ErrTampered, "another key's MACs do not verify")
		})
	}
}

// TestAssembledScope: a scoped grant's scope comes from the approvers' choices within the
// request's offer; a decision that names a scope on a request that offered none grants the one
// operation only.
func TestAssembledScope(t *testing.T) {
	id := "ap-cccccccccccccccc"
	exp := time.Now().Add(time.Hour)
	choice := &ScopeChoice{Verbs: []string{"create"}, Resources: []string{"secrets"}}
	offer := &ScopeOffer{Namespace: "shop", Session: "s-1"}
	tests := []struct {
		name  string
		offer *ScopeOffer
		want  *Scope
	}{
		{"offered and chosen", offer, &Scope{Verbs: []string{"create"}, Resources: []string{"secrets"}, Namespace: "shop", Session: "s-1"}},
		{"chosen without an offer", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := json.Marshal(Request{ID: id, Fingerprint: "fp", ApproverGroups: []string{"a"}, Required: 1, ScopeOffer: tc.offer})
			require.NoError(t, err)
			dec, err := json.Marshal(decisionRecord{ID: id, State: StateApproved, GrantExpires: &exp, Seq: 1,
				Decisions: []Decision{{Approver: "ann", Verdict: Approve, Scope: choice}}})
			require.NoError(t, err)
			macKey := []byte("0123456789abcdef0123456789abcdef")
			st := &stored{id: id}
			value, _ := seal(macKey, typeRequest, key(PrefixRequest, id), nil, req)
			require.NoError(t, st.set(PrefixRequest, value, 1))
			value, _ = seal(macKey, typeDecision, key(PrefixDecision, id), st.req.MAC, dec)
			require.NoError(t, st.set(PrefixDecision, value, 2))
			r, err := st.assemble(macKey)
			require.NoError(t, err)
			require.NotNil(t, r.Grant)
			assert.Equal(t, tc.want, r.Grant.Scope)
		})
	}
}
