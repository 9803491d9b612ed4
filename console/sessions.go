package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/recording"
	"github.com/gatehouse-dev/gatehouse/sessionlog"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// SessionLog reads what Gatehouse recorded of sessions: their summaries, timelines and
// recordings. *sessionlog.Store implements it over the enricher's ClickHouse database.
type SessionLog interface {
	List(ctx context.Context, f sessionlog.Filter) ([]sessionlog.Session, error)
	Session(ctx context.Context, id string) (*sessionlog.Session, error)
	Timeline(ctx context.Context, sessionID string) ([]sessionlog.Entry, error)
	Recording(ctx context.Context, id string) (*sessionlog.Recording, error)
}

var _ SessionLog = (*sessionlog.Store)(nil)

// Who may see a session (see doc.go): the viewer groups see every session; anyone else sees
// the sessions that are their own (the session's verified user is theirs) and the sessions in
// which an approval request they may see was made: its requester's and its approvers' - what
// an approver needs to judge a request is the session it came from. The rule is checked on the
// server for every page, recording and cast; a session that exists but may not be seen looks
// exactly like one that does not.

// sessionListLimit bounds the rows of the sessions page.
const sessionListLimit = 200

// maxRequestSessions bounds the sessions of approval requests a non-viewer's list looks up.
const maxRequestSessions = 500

// sessionsTimeout bounds the session log's queries of one page.
const sessionsTimeout = 20 * time.Second

// playerCSP is the Content-Security-Policy of the recording page: the console's policy with
// 'wasm-unsafe-eval' added to script-src and nothing else. asciinema-player's terminal emulator
// is WebAssembly, inlined in the vendored bundle and compiled with WebAssembly.instantiate,
// which a policy without 'wasm-unsafe-eval' blocks; the keyword allows compiling WebAssembly
// only, not eval or inline script. The player sets its styles through the CSSOM (element.style),
// which style-src does not govern, and its markup carries no style attributes, so styles stay
// 'self' only (no 'unsafe-inline'); it fetches the cast from the console (connect-src 'self')
// and uses no worker, font or image from anywhere.
var playerCSP = strings.Replace(contentSecurityPolicy, "script-src 'self';", "script-src 'self' 'wasm-unsafe-eval';", 1)

func (s *Server) sessionRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /sessions", s.withSession(s.withSessionLog(s.handleSessions)))
	m.HandleFunc("GET /sessions/{id}", s.withSession(s.withSessionLog(s.handleSessionPage)))
	m.HandleFunc("GET /sessions/{id}/recordings/{rec}", s.withSession(s.withSessionLog(s.handleRecording)))
	m.HandleFunc("GET /sessions/{id}/recordings/{rec}/cast", s.withSession(s.withSessionLog(s.handleCast)))
}

// withSessionLog answers the session pages when the console has no session log.
func (s *Server) withSessionLog(next sessionHandler) sessionHandler {
	return func(w http.ResponseWriter, r *http.Request, sess *session) {
		if s.opts.Sessions == nil {
			s.render(w, r, http.StatusServiceUnavailable, "sessions-off", &page{Title: "Sessions", Session: sess,
				Styles: []string{"sessions.css"}})
			return
		}
		next(w, r, sess)
	}
}

// sessionLogFailed answers a page whose session log query failed.
func (s *Server) sessionLogFailed(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.log.Error("read the session log", "what", what, "err", err)
	s.renderError(w, r, http.StatusServiceUnavailable, "The session log (ClickHouse) could not be read. Try again shortly.")
}

// seesAllSessions reports whether the identity is in a viewer group.
func (s *Server) seesAllSessions(sess *session) bool {
	return inGroups(sess.Identity, s.opts.ViewerGroups)
}

// ownSession reports whether a session is the identity's own.
func ownSession(sess *session, sum *sessionlog.Session) bool {
	return sum.User != "" && sum.User == sess.Identity.User
}

// requestSessions returns the IDs of the sessions of the approval requests the identity may see,
// the newest first, and, for sessionID when set, those requests.
func (s *Server) requestSessions(sess *session, sessionID string) ([]string, []*item) {
	items, _, _ := s.hub.snapshot()
	var ids []string
	var inSession []*item
	seen := map[string]bool{}
	for _, it := range items {
		if it.SessionID == "" || !s.visible(sess, it) {
			continue
		}
		if it.SessionID == sessionID {
			inSession = append(inSession, it)
		}
		if !seen[it.SessionID] && len(ids) < maxRequestSessions {
			seen[it.SessionID] = true
			ids = append(ids, it.SessionID)
		}
	}
	return ids, inSession
}

// errNoSuchSession is returned for a session that does not exist or may not be seen.
var errNoSuchSession = errors.New("console: no such session")

// viewableSession returns a session's summary, and the approval requests made in it that the
// identity may see, when the identity may see the session; errNoSuchSession when the session
// does not exist or may not be seen.
func (s *Server) viewableSession(ctx context.Context, sess *session, id string) (*sessionlog.Session, []*item, error) {
	sum, err := s.opts.Sessions.Session(ctx, id)
	if errors.Is(err, sessionlog.ErrNotFound) {
		return nil, nil, errNoSuchSession
	}
	if err != nil {
		return nil, nil, err
	}
	_, reqs := s.requestSessions(sess, id)
	if s.seesAllSessions(sess) || ownSession(sess, sum) || len(reqs) > 0 {
		return sum, reqs, nil
	}
	s.log.Info("session refused", "user", sess.Identity.User, "session", truncate(id, 64))
	return nil, nil, errNoSuchSession
}

func (s *Server) noSuchSession(w http.ResponseWriter, r *http.Request, id string) {
	s.renderError(w, r, http.StatusNotFound, "There is no session "+truncate(id, 32)+" that you may see.")
}

// sessionFilter is the sessions page's query.
type sessionFilter struct {
	User, From, To string
	Recordings     bool
}

type sessionsPage struct {
	Filter   sessionFilter
	Rows     []sessionlog.Session
	More     bool
	All      bool
	Problems []string
}

func (s *Server) handleSessions(w http.ResponseWriter, r *http.Request, sess *session) {
	q := r.URL.Query()
	f := sessionFilter{User: strings.TrimSpace(q.Get("user")), From: q.Get("from"), To: q.Get("to"), Recordings: q.Get("recordings") != ""}
	lf := sessionlog.Filter{User: f.User, WithRecordings: f.Recordings, Limit: sessionListLimit + 1}
	var problems []string
	for _, t := range []struct {
		in  string
		out *time.Time
	}{{f.From, &lf.Since}, {f.To, &lf.Until}} {
		if t.in == "" {
			continue
		}
		v, err := parseTime(t.in)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%q is not a time (use 2006-01-02T15:04)", truncate(t.in, 64)))
			continue
		}
		*t.out = v
	}
	ctx, cancel := context.WithTimeout(r.Context(), sessionsTimeout)
	defer cancel()
	all := s.seesAllSessions(sess)
	var rows []sessionlog.Session
	if all {
		list, err := s.opts.Sessions.List(ctx, lf)
		if err != nil {
			s.sessionLogFailed(w, r, "sessions", err)
			return
		}
		rows = list
	} else {
		// One's own sessions, and the sessions of the approval requests one may see.
		byID := map[string]sessionlog.Session{}
		if f.User == "" || f.User == sess.Identity.User {
			own := lf
			own.User = sess.Identity.User
			list, err := s.opts.Sessions.List(ctx, own)
			if err != nil {
				s.sessionLogFailed(w, r, "sessions", err)
				return
			}
			for _, x := range list {
				byID[x.ID] = x
			}
		}
		if ids, _ := s.requestSessions(sess, ""); len(ids) > 0 {
			of := lf
			of.IDs = ids
			list, err := s.opts.Sessions.List(ctx, of)
			if err != nil {
				s.sessionLogFailed(w, r, "sessions", err)
				return
			}
			for _, x := range list {
				byID[x.ID] = x
			}
		}
		rows = slices.Collect(maps.Values(byID))
		sort.Slice(rows, func(i, j int) bool {
			if !rows[i].LastActivity.Equal(rows[j].LastActivity) {
				return rows[i].LastActivity.After(rows[j].LastActivity)
			}
			return rows[i].ID < rows[j].ID
		})
	}
	more := len(rows) > sessionListLimit
	if more {
		rows = rows[:sessionListLimit]
	}
	s.render(w, r, http.StatusOK, "sessions", &page{Title: "Sessions", Session: sess, Styles: []string{"sessions.css"},
		Data: sessionsPage{Filter: f, Rows: rows, More: more, All: all, Problems: problems}})
}

// entryView is a timeline entry as the session page shows it: what `gatehouse sessions show`
// prints of it.
type entryView struct {
	sessionlog.Entry
	Call     string
	Failed   bool
	Masked   string
	Decision string
	Rec      *recordingView
}

// recordingView is a recording as the pages show it.
type recordingView struct {
	*sessionlog.RecordingSummary
	URL     string
	Command string
	// Terminal: a terminal recording the player plays.
	Terminal bool
}

type sessionPage struct {
	Summary  *sessionlog.Session
	Requests []*reqView
	Entries  []entryView
}

func (s *Server) handleSessionPage(w http.ResponseWriter, r *http.Request, sess *session) {
	id := r.PathValue("id")
	ctx, cancel := context.WithTimeout(r.Context(), sessionsTimeout)
	defer cancel()
	sum, reqs, err := s.viewableSession(ctx, sess, id)
	switch {
	case errors.Is(err, errNoSuchSession):
		s.noSuchSession(w, r, id)
		return
	case err != nil:
		s.sessionLogFailed(w, r, "session", err)
		return
	}
	entries, err := s.opts.Sessions.Timeline(ctx, id)
	if err != nil {
		s.sessionLogFailed(w, r, "timeline", err)
		return
	}
	now := s.clock.Now()
	p := sessionPage{Summary: sum}
	for _, it := range reqs {
		p.Requests = append(p.Requests, s.view(sess, it, now, false))
	}
	for _, e := range entries {
		p.Entries = append(p.Entries, s.entryView(id, e))
	}
	s.render(w, r, http.StatusOK, "session", &page{Title: "Session " + id, Session: sess, Styles: []string{"sessions.css"}, Data: p})
}

func (s *Server) entryView(sessionID string, e sessionlog.Entry) entryView {
	v := entryView{Entry: e, Failed: e.Code >= 400}
	call := e.Verb + " " + e.Resource
	if e.Subresource != "" {
		call += "/" + e.Subresource
	}
	if target := strings.Trim(e.Namespace+"/"+e.Name, "/"); target != "" {
		call += " " + target
	}
	if e.Resource == "" {
		call = e.Verb + " " + e.URI
	}
	v.Call = call
	if d := e.Decision; d != nil {
		v.Decision = d.Action
		if d.Rule != "" {
			v.Decision += " " + d.Policy + "/" + d.Rule
		}
	}
	if e.Masked > 0 {
		v.Masked = strconv.Itoa(e.Masked)
		keys := slices.Sorted(maps.Keys(e.MaskedBy))
		var by []string
		for _, k := range keys {
			by = append(by, fmt.Sprintf("%s: %d", k, e.MaskedBy[k]))
		}
		if len(by) > 0 {
			v.Masked += " (" + strings.Join(by, ", ") + ")"
		}
	}
	if e.Recording != nil {
		v.Rec = recView(sessionID, e.Recording)
	}
	return v
}

func recView(sessionID string, r *sessionlog.RecordingSummary) *recordingView {
	return &recordingView{RecordingSummary: r, Command: strings.Join(r.Command, " "), Terminal: r.Format == trail.FormatAsciicast,
		URL: "/sessions/" + url.PathEscape(sessionID) + "/recordings/" + url.PathEscape(r.ID)}
}

// recordingPage is a recording with what its hash chain says.
type recordingPage struct {
	Summary *sessionlog.Session
	Rec     *recordingView
	// Verified: the hash chain verifies; else ChainError says why not.
	Verified   bool
	Incomplete bool
	ChainError string
	Head       string
	Chunks     int
	// Cast is the terminal recording, decoded: nil for a port-forward or an undecodable one.
	Cast      *recording.Cast
	CastError string
	CastURL   string
	Duration  string
	// Events are a port-forward recording's connection events.
	Events string
	Speed  string
	Speeds []string
}

// playerSpeeds are the speeds the recording page offers.
var playerSpeeds = []string{"0.5", "1", "2", "4", "8"}

// loadRecording returns a recording of a session the identity may see, or errNoSuchSession
// when the session may not be seen or the recording is not one of its recordings.
func (s *Server) loadRecording(ctx context.Context, sess *session, sessionID, id string) (*sessionlog.Session, *sessionlog.Recording, error) {
	sum, _, err := s.viewableSession(ctx, sess, sessionID)
	if err != nil {
		return nil, nil, err
	}
	rec, err := s.opts.Sessions.Recording(ctx, id)
	if errors.Is(err, sessionlog.ErrNotFound) {
		return nil, nil, errNoSuchSession
	}
	if err != nil {
		return nil, nil, err
	}
	// The session grants access to its own recordings only.
	for _, c := range rec.Chunks {
		if c.SessionID != sessionID {
			s.log.Warn("recording of another session refused", "user", sess.Identity.User, "session", truncate(sessionID, 64), "recording", truncate(id, 64))
			return nil, nil, errNoSuchSession
		}
	}
	return sum, rec, nil
}

func (s *Server) handleRecording(w http.ResponseWriter, r *http.Request, sess *session) {
	sessionID, id := r.PathValue("id"), r.PathValue("rec")
	ctx, cancel := context.WithTimeout(r.Context(), sessionsTimeout)
	defer cancel()
	sum, rec, err := s.loadRecording(ctx, sess, sessionID, id)
	switch {
	case errors.Is(err, errNoSuchSession):
		s.renderError(w, r, http.StatusNotFound, "There is no recording "+truncate(id, 32)+" that you may see.")
		return
	case err != nil:
		s.sessionLogFailed(w, r, "recording", err)
		return
	}
	summary := rec.Summary()
	p := recordingPage{Summary: sum, Rec: recView(sessionID, &summary), Chunks: len(rec.Chunks), Speeds: playerSpeeds, Speed: "1"}
	if sp := r.URL.Query().Get("speed"); slices.Contains(playerSpeeds, sp) {
		p.Speed = sp
	}
	head, verr := rec.Verify()
	p.Head = head
	switch {
	case verr == nil:
		p.Verified = true
	case errors.Is(verr, trail.ErrChainIncomplete):
		p.Incomplete = true
		p.ChainError = verr.Error()
	default:
		p.ChainError = verr.Error()
	}
	var scripts, styles []string
	styles = append(styles, "sessions.css")
	if summary.Format == trail.FormatAsciicast {
		cast, err := rec.Cast()
		if err != nil {
			p.CastError = err.Error()
		} else {
			p.Cast = cast
			p.Duration = cast.Duration().Round(100 * time.Millisecond).String()
			p.CastURL = p.Rec.URL + "/cast"
			styles = append(styles, "asciinema-player.css")
			scripts = append(scripts, "asciinema-player.min.js", "player.js")
			w.Header().Set("Content-Security-Policy", playerCSP)
		}
	} else {
		p.Events = rec.Data()
	}
	s.render(w, r, http.StatusOK, "recording", &page{Title: "Recording " + id, Session: sess, Styles: styles, Scripts: scripts, Data: p})
}

// handleCast serves a terminal recording as `gatehouse sessions export` writes it.
func (s *Server) handleCast(w http.ResponseWriter, r *http.Request, sess *session) {
	sessionID, id := r.PathValue("id"), r.PathValue("rec")
	ctx, cancel := context.WithTimeout(r.Context(), sessionsTimeout)
	defer cancel()
	_, rec, err := s.loadRecording(ctx, sess, sessionID, id)
	switch {
	case errors.Is(err, errNoSuchSession):
		http.Error(w, "no such recording", http.StatusNotFound)
		return
	case err != nil:
		s.log.Error("read the session log", "what", "cast", "err", err)
		http.Error(w, "the session log (ClickHouse) could not be read", http.StatusServiceUnavailable)
		return
	}
	var buf bytes.Buffer
	if err := rec.Export(&buf); err != nil {
		http.Error(w, "not a terminal recording", http.StatusNotFound)
		return
	}
	chain := "verified"
	if _, err := rec.Verify(); err != nil {
		chain = "not verified"
	}
	h := w.Header()
	h.Set("Content-Type", "application/x-asciicast")
	h.Set("Gatehouse-Recording-Chain", chain)
	disposition := "inline"
	if r.URL.Query().Get("download") != "" {
		disposition = "attachment"
	}
	h.Set("Content-Disposition", disposition+`; filename="`+safeFileName(id)+`.cast"`)
	_, _ = w.Write(buf.Bytes())
}

// safeFileName keeps the characters of a recording ID that are safe in a file name.
func safeFileName(id string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, truncate(id, 64))
}
