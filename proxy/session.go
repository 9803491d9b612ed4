package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/authn"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// sessionID returns the request's session ID for the client's session label. A session groups
// one client run. With a label (the session client option) the ID is derived from the label and
// the verified identity, so a label is bound to its identity and another identity using the same
// label gets a different session. Without one, the ID is derived from the token (digest is its
// SHA-256 digest): one token, one session.
func sessionID(label string, digest [sha256.Size]byte, id *authn.Identity) string {
	if label == "" {
		return idOf("t-", &digest)
	}
	sum := sha256.Sum256([]byte(id.Issuer + "\x00" + id.Subject + "\x00" + id.User + "\x00" + label))
	return idOf("s-", &sum)
}

// idOf is prefix followed by the first 10 bytes of sum in hex.
func idOf(prefix string, sum *[sha256.Size]byte) string {
	var b [32]byte
	n := copy(b[:], prefix)
	n += hex.Encode(b[n:], sum[:10])
	return string(b[:n])
}

// sessions tracks the sessions this proxy instance has seen and writes Session records: one when
// a session starts (here) and one per interval while it is active.
type sessions struct {
	interval time.Duration
	source   string
	rec      Recorder
	log      *slog.Logger

	mu   sync.Mutex
	seen map[string]*sessionState
}

type sessionState struct {
	label        string
	started      time.Time
	lastActivity time.Time
	lastReport   time.Time
	requests     int64
}

// maxSessions bounds the tracked sessions; idle ones are forgotten first.
const maxSessions = 100_000

func newSessions(interval time.Duration, source string, rec Recorder, log *slog.Logger) *sessions {
	return &sessions{interval: interval, source: source, rec: rec, log: log, seen: map[string]*sessionState{}}
}

func (s *sessions) touch(ctx context.Context, id, label string, who *authn.Identity, client, sourceIP string) {
	now := time.Now()
	s.mu.Lock()
	st, ok := s.seen[id]
	event := trail.SessionActive
	if !ok {
		if len(s.seen) >= maxSessions {
			s.forgetIdle(now)
		}
		st = &sessionState{label: label, started: now, lastReport: now}
		s.seen[id] = st
		event = trail.SessionStarted
	}
	st.lastActivity = now
	st.requests++
	if ok && now.Sub(st.lastReport) < s.interval {
		s.mu.Unlock()
		return
	}
	st.lastReport = now
	rec := &trail.Session{
		Meta:         trail.Meta{Time: now, Source: s.source},
		SessionID:    id,
		Label:        st.label,
		Event:        event,
		Identity:     who.Identity,
		Client:       truncate(client, 256),
		SourceIP:     sourceIP,
		Started:      st.started,
		LastActivity: now,
		Requests:     st.requests,
	}
	s.mu.Unlock()
	if err := s.rec.Publish(context.WithoutCancel(ctx), rec); err != nil {
		s.log.Error("session record not written", "session", id, "err", err)
	}
}

// forgetIdle drops sessions idle for longer than an hour, or the oldest half when none is.
func (s *sessions) forgetIdle(now time.Time) {
	for id, st := range s.seen {
		if now.Sub(st.lastActivity) > time.Hour {
			delete(s.seen, id)
		}
	}
	for id := range s.seen {
		if len(s.seen) < maxSessions/2 {
			return
		}
		delete(s.seen, id)
	}
}
