package approvals

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strings"
	"time"
)

// How an approval request is stored. The bucket's keys fall under four prefixes, and each
// prefix is written by one component only: NATS permissions (package natsbus) refuse the others.
//
//	req.<id>          the request as admission created it          the webhook, once
//	dec.<id>          the approvers' decisions, the state, the grant the console (approvals API)
//	use.<id>          the grant's use at admission                  the webhook, once
//	fp.<fingerprint>  the request admission finds an operation's    the webhook
//
// req, dec and use values are envelopes: {"mac":"<base64>","data":{...}}. The MAC is an
// HMAC-SHA256 under the approval key (Options.Key), which only the webhook and the console hold
// and NATS never sees. It covers a domain tag, the record type, the key (so the request ID), the
// MAC of the request the record belongs to (for dec and use: so the record cannot be moved to
// another request) and the data exactly as stored (the request with its fingerprint, requester,
// object and approver groups; the verdicts, state and grant of a decision; the admission UID of a
// use). A record whose MAC does not verify, or that contradicts the others (a request that
// carries a state, a use without a grant), makes the whole request fail with ErrTampered:
// admission refuses its grant and the console refuses to show it or decide it. The fp index
// needs no MAC: admission only uses a request whose fingerprint and requester it checks itself.
const (
	// PrefixRequest holds the requests as admission created them.
	PrefixRequest = "req"
	// PrefixDecision holds the approvers' decisions, the request's state and its grant.
	PrefixDecision = "dec"
	// PrefixUse holds the uses of grants at admission.
	PrefixUse = "use"
	// PrefixIndex maps an operation's fingerprint to its latest request.
	PrefixIndex = "fp"
	// PrefixScope maps a session, a namespace and a rule to its requests that offer a scope.
	// Like the fp index it needs no MAC: it only names requests, each verified when read.
	PrefixScope = "scope"
)

// MinKeyBytes is the shortest approval key accepted.
const MinKeyBytes = 32

// ErrTampered means a stored part of an approval request failed its integrity check: its MAC
// does not verify under the approval key, or it contradicts the other parts. Such a request is
// neither shown, decided nor admitted.
var ErrTampered = errors.New("the approval request failed its integrity check")

// macTag separates these MACs from every other use of the key.
const macTag = "gatehouse.dev/approvals/v1"

// Record types, part of each MAC.
const (
	typeRequest  = "request"
	typeDecision = "decision"
	typeUse      = "use"
)

// decisionRecord is what the console stores at dec.<id>.
type decisionRecord struct {
	ID        string     `json:"id"`
	State     State      `json:"state"`
	Decisions []Decision `json:"decisions,omitempty"`
	// GrantExpires is set once the request is approved.
	GrantExpires *time.Time `json:"grantExpires,omitempty"`
	// Seq counts the writes of this record, from 1.
	Seq int `json:"seq"`
}

// useRecord is what admission stores at use.<id> when it lets the approved operation through.
type useRecord struct {
	ID           string    `json:"id"`
	UsedAt       time.Time `json:"usedAt"`
	AdmissionUID string    `json:"admissionUID,omitempty"`
}

// sealed is a stored envelope: its data as stored and its MAC.
type sealed struct {
	MAC  []byte
	Data []byte
}

type wireEnvelope struct {
	MAC  string          `json:"mac"`
	Data json.RawMessage `json:"data"`
}

// seal returns the envelope of data, stored at key, bound to the request whose MAC is bound
// (nil for the request itself).
func seal(macKey []byte, typ, key string, bound, data []byte) ([]byte, []byte) {
	mac := sum(macKey, typ, key, bound, data)
	var b bytes.Buffer
	b.WriteString(`{"mac":"`)
	b.WriteString(base64.StdEncoding.EncodeToString(mac))
	b.WriteString(`","data":`)
	b.Write(data)
	b.WriteString(`}`)
	return b.Bytes(), mac
}

// open parses an envelope without verifying it.
func open(value []byte) (sealed, error) {
	var w wireEnvelope
	if err := json.Unmarshal(value, &w); err != nil {
		return sealed{}, err
	}
	mac, err := base64.StdEncoding.DecodeString(w.MAC)
	if err != nil || len(w.Data) == 0 {
		return sealed{}, errors.New("not an approvals envelope")
	}
	return sealed{MAC: mac, Data: w.Data}, nil
}

// verify reports whether s's MAC is the one macKey gives its data at key, bound to bound.
func (s sealed) verify(macKey []byte, typ, key string, bound []byte) bool {
	return hmac.Equal(s.MAC, sum(macKey, typ, key, bound, s.Data))
}

func sum(macKey []byte, typ, key string, bound, data []byte) []byte {
	h := hmac.New(sha256.New, macKey)
	for _, f := range [][]byte{[]byte(macTag), []byte(typ), []byte(key), bound, data} {
		field(h, f)
	}
	return h.Sum(nil)
}

// field writes b length-prefixed, so that no two sequences of fields give the same input.
func field(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

func key(prefix, id string) string { return prefix + "." + id }

// stored is an approval request as read from the bucket: its parts and their revisions.
type stored struct {
	id      string
	req     sealed
	dec     *sealed
	decRev  uint64
	use     *sealed
	maxRev  uint64
	decData *decisionRecord
	// bad holds, by prefix, a part that is not an envelope at all.
	bad map[string]error
}

// assemble checks the parts of a request (their MACs when macKey is set, and always that they
// agree with each other) and returns the request they make up, as stored: expiry by time is not
// applied.
func (s *stored) assemble(macKey []byte) (*Request, error) {
	tampered := func(what string) error { return fmt.Errorf("%w: %s %s", ErrTampered, s.id, what) }
	for p, err := range s.bad {
		return nil, tampered(p + ": " + err.Error())
	}
	if macKey != nil && !s.req.verify(macKey, typeRequest, key(PrefixRequest, s.id), nil) {
		return nil, tampered("request MAC")
	}
	var r Request
	if err := json.Unmarshal(s.req.Data, &r); err != nil {
		return nil, tampered("request: " + err.Error())
	}
	// A request as admission created it carries no state of its own.
	if r.ID != s.id || r.State != "" || r.Decisions != nil || r.Grant != nil {
		return nil, tampered("request contents")
	}
	r.State = StatePending
	if s.dec != nil {
		if macKey != nil && !s.dec.verify(macKey, typeDecision, key(PrefixDecision, s.id), s.req.MAC) {
			return nil, tampered("decision MAC")
		}
		var d decisionRecord
		if err := json.Unmarshal(s.dec.Data, &d); err != nil || d.ID != s.id {
			return nil, tampered("decision contents")
		}
		switch {
		case d.State == StateApproved && d.GrantExpires == nil,
			d.State != StateApproved && d.State != StateExpired && d.GrantExpires != nil,
			d.State != StatePending && d.State != StateApproved && d.State != StateDenied && d.State != StateExpired:
			return nil, tampered("decision state")
		}
		s.decData = &d
		r.State, r.Decisions = d.State, d.Decisions
		if d.GrantExpires != nil {
			// A scoped grant's scope follows from the approvers' decisions and the request's
			// offer, both under their MACs.
			r.Grant = &Grant{Expires: *d.GrantExpires, Scope: r.grantScope()}
		}
	}
	if s.use != nil {
		if macKey != nil && !s.use.verify(macKey, typeUse, key(PrefixUse, s.id), s.req.MAC) {
			return nil, tampered("use MAC")
		}
		var u useRecord
		if err := json.Unmarshal(s.use.Data, &u); err != nil || u.ID != s.id {
			return nil, tampered("use contents")
		}
		// Admission uses only an approved grant; the console may have recorded the grant's
		// expiry meanwhile.
		if r.Grant == nil {
			return nil, tampered("use without a grant")
		}
		r.State = StateUsed
		usedAt := u.UsedAt
		r.Grant.UsedAt, r.Grant.AdmissionUID = &usedAt, u.AdmissionUID
	}
	return &r, nil
}

// keyID splits a bucket key into its prefix and ID.
func keyID(k string) (prefix, id string, ok bool) {
	return strings.Cut(k, ".")
}

// set stores the envelope read at prefix.<id> with its revision.
func (s *stored) set(prefix string, value []byte, rev uint64) error {
	s.maxRev = max(s.maxRev, rev)
	env, err := open(value)
	if err != nil {
		if s.bad == nil {
			s.bad = map[string]error{}
		}
		s.bad[prefix] = err
		return err
	}
	delete(s.bad, prefix)
	switch prefix {
	case PrefixRequest:
		s.req = env
	case PrefixDecision:
		s.dec, s.decRev = &env, rev
	case PrefixUse:
		s.use = &env
	}
	return nil
}
