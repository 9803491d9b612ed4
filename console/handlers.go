package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/approvals"
)

// maxReason is the longest decision reason, as the broker allows.
const maxReason = 1024

func (s *Server) handleInbox(w http.ResponseWriter, r *http.Request, sess *session) {
	items, rev, live := s.hub.snapshot()
	now := s.clock.Now()
	var rows []*reqView
	for _, it := range items {
		if it.state(now) == approvals.StatePending && s.visible(sess, it) {
			rows = append(rows, s.view(sess, it, now, false))
		}
	}
	s.render(w, r, http.StatusOK, "inbox", &page{Title: "Inbox", Session: sess, Since: rev, Live: live, Data: rows})
}

// historyFilter is the history page's query.
type historyFilter struct {
	State, Requester, Session, Namespace, From, To string
	from, to                                       time.Time
}

func (f *historyFilter) match(it *item, now time.Time) bool {
	contains := func(s, sub string) bool {
		return sub == "" || strings.Contains(strings.ToLower(s), strings.ToLower(sub))
	}
	return (f.State == "" || string(it.state(now)) == f.State) &&
		contains(it.Requester.User, f.Requester) &&
		(f.Session == "" || it.SessionID == f.Session) &&
		(f.Namespace == "" || it.Operation.Namespace == f.Namespace) &&
		(f.from.IsZero() || !it.Created.Before(f.from)) &&
		(f.to.IsZero() || it.Created.Before(f.to))
}

// historyLimit bounds the rows of one history page.
const historyLimit = 500

func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request, sess *session) {
	q := r.URL.Query()
	f := historyFilter{State: q.Get("state"), Requester: q.Get("requester"), Session: q.Get("session"),
		Namespace: q.Get("namespace"), From: q.Get("from"), To: q.Get("to")}
	var problems []string
	for _, t := range []struct {
		in  string
		out *time.Time
	}{{f.From, &f.from}, {f.To, &f.to}} {
		if t.in == "" {
			continue
		}
		v, err := parseTime(t.in)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%q is not a time (use 2006-01-02T15:04)", t.in))
			continue
		}
		*t.out = v
	}
	items, _, _ := s.hub.snapshot()
	now := s.clock.Now()
	var rows []*reqView
	more := false
	for _, it := range items {
		if !s.visible(sess, it) || !f.match(it, now) {
			continue
		}
		if len(rows) == historyLimit {
			more = true
			break
		}
		rows = append(rows, s.view(sess, it, now, false))
	}
	s.render(w, r, http.StatusOK, "history", &page{Title: "History", Session: sess, Data: historyPage{
		Filter: f, Rows: rows, More: more, Problems: problems, States: []approvals.State{approvals.StatePending,
			approvals.StateApproved, approvals.StateDenied, approvals.StateExpired, approvals.StateUsed},
	}})
}

func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("not a time")
}

func (s *Server) handleRequest(w http.ResponseWriter, r *http.Request, sess *session) {
	s.renderRequest(w, r, sess, http.StatusOK, "")
}

// lookup returns a request from the hub or, when the hub has not seen it yet (a deep link
// followed the moment the request was made), from the broker.
func (s *Server) lookup(ctx context.Context, id string) (*item, uint64, error) {
	it, rev := s.hub.get(id)
	if it != nil {
		return it, rev, nil
	}
	r, err := s.opts.Broker.Get(ctx, id)
	if err != nil {
		return nil, rev, err
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return nil, rev, err
	}
	it = decodeItem(&approvals.Change{Request: r, Raw: raw})
	it.Revision = 0 // not from the hub's history
	return it, rev, nil
}

// tamperedPage is what the console says of a request that failed its integrity check.
const tamperedPage = "Approval request %s failed its integrity check: it was changed outside Gatehouse, so the console neither shows it nor lets anyone decide it. Tell a Gatehouse administrator."

func (s *Server) renderRequest(w http.ResponseWriter, r *http.Request, sess *session, code int, problem string) {
	it, rev, err := s.lookup(r.Context(), r.PathValue("id"))
	if errors.Is(err, approvals.ErrTampered) {
		s.log.Error("approval request refused: it failed its integrity check", "approval", truncate(r.PathValue("id"), 32), "err", err)
		s.renderError(w, r, http.StatusConflict, fmt.Sprintf(tamperedPage, truncate(r.PathValue("id"), 32)))
		return
	}
	if it == nil || !s.visible(sess, it) {
		// Not found and not visible look the same: IDs are not a way to probe.
		s.renderError(w, r, http.StatusNotFound, "There is no approval request "+truncate(r.PathValue("id"), 32)+" that you may see.")
		return
	}
	v := s.view(sess, it, s.clock.Now(), true)
	v.Problem = problem
	s.render(w, r, code, "request", &page{Title: it.ID, Session: sess, Since: rev, Live: true, Data: v})
}

func (s *Server) handleDecide(w http.ResponseWriter, r *http.Request, sess *session) {
	id := r.PathValue("id")
	it, _, err := s.lookup(r.Context(), id)
	if errors.Is(err, approvals.ErrTampered) {
		s.renderError(w, r, http.StatusConflict, fmt.Sprintf(tamperedPage, truncate(id, 32)))
		return
	}
	if it == nil || !s.visible(sess, it) {
		s.renderError(w, r, http.StatusNotFound, "There is no approval request "+truncate(id, 32)+" that you may see.")
		return
	}
	var verdict approvals.Verdict
	switch r.PostFormValue("verdict") {
	case string(approvals.Approve):
		verdict = approvals.Approve
	case string(approvals.Deny):
		verdict = approvals.Deny
	default:
		s.renderRequest(w, r, sess, http.StatusBadRequest, "Choose Approve or Deny.")
		return
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	switch {
	case reason == "":
		s.renderRequest(w, r, sess, http.StatusBadRequest, "A reason is required: it is recorded with your decision.")
		return
	case len(reason) > maxReason:
		s.renderRequest(w, r, sess, http.StatusBadRequest, fmt.Sprintf("The reason is longer than %d characters.", maxReason))
		return
	}
	var choice *approvals.ScopeChoice
	if verdict == approvals.Approve && r.PostFormValue("grant") == "scope" {
		choice = &approvals.ScopeChoice{Verbs: r.PostForm["scope-verb"], Resources: r.PostForm["scope-resource"]}
		if d := strings.TrimSpace(r.PostFormValue("scope-duration")); d != "" {
			dur, err := time.ParseDuration(d)
			if err != nil || dur <= 0 {
				s.renderRequest(w, r, sess, http.StatusBadRequest, "The scope's duration must be a duration such as 15m.")
				return
			}
			choice.Duration.Duration = dur
		}
		if len(choice.Verbs) == 0 || len(choice.Resources) == 0 {
			s.renderRequest(w, r, sess, http.StatusBadRequest, "A scope needs at least one verb and one resource.")
			return
		}
	}
	if s.opts.Masker != nil {
		masked, _ := s.opts.Masker.Text(nil, []byte(reason))
		reason = string(masked)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	decided, err := s.opts.Broker.DecideScoped(ctx, id, sess.Identity, verdict, reason, choice)
	switch {
	case err == nil:
		s.log.Info("approval decision", "approval", id, "approver", sess.Identity.User, "verdict", verdict, "state", decided.State)
		http.Redirect(w, r, "/approvals/"+id, http.StatusSeeOther)
	case errors.Is(err, approvals.ErrNotAllowed):
		s.renderRequest(w, r, sess, http.StatusForbidden, err.Error())
	case errors.Is(err, approvals.ErrFinal):
		s.renderRequest(w, r, sess, http.StatusConflict, "Not recorded: "+err.Error()+".")
	case errors.Is(err, approvals.ErrNotFound):
		s.renderError(w, r, http.StatusNotFound, "There is no approval request "+truncate(id, 32)+".")
	case errors.Is(err, approvals.ErrTampered):
		s.log.Error("approval decision refused: the request failed its integrity check", "approval", id, "err", err)
		s.renderError(w, r, http.StatusConflict, fmt.Sprintf(tamperedPage, truncate(id, 32)))
	case errors.Is(err, approvals.ErrInvalidInput):
		s.renderRequest(w, r, sess, http.StatusBadRequest, err.Error())
	default:
		s.log.Error("approval decision failed", "approval", id, "err", err)
		s.renderRequest(w, r, sess, http.StatusServiceUnavailable, "The approval broker (NATS) is unavailable, so your decision was not recorded. Try again shortly.")
	}
}

// heartbeat keeps idle event streams open through proxies and detects gone browsers.
const heartbeat = 15 * time.Second

// handleEvents streams changes of the requests the identity may see as server-sent events:
// "request" events carry the HTML of a request (the inbox row, or with ?id= the live part of
// that request's page), "reset" the whole inbox when the stream starts over, "status" whether
// the console follows NATS. Every event's id is the revision it brings the page to; a browser
// reconnecting with Last-Event-ID (or a page with ?since=) gets exactly the changes after it.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	sess, err := s.sessionOf(r)
	if err != nil {
		http.Error(w, "sign in again", http.StatusUnauthorized)
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	cursorText := r.Header.Get("Last-Event-ID")
	if cursorText == "" {
		cursorText = r.URL.Query().Get("since")
	}
	cursor, _ := strconv.ParseUint(cursorText, 10, 64)
	only := r.URL.Query().Get("id")
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	var buf bytes.Buffer
	buf.WriteString("retry: 1000\n\n")
	liveSent, firstStatus := false, true
	beat := s.clock.NewTicker(heartbeat)
	defer beat.Stop()
	for {
		changes, reset, last, wake, live := s.hub.since(cursor)
		now := s.clock.Now()
		if live != liveSent || firstStatus {
			status := "down"
			if live {
				status = "live"
			}
			writeEvent(&buf, "status", "", status)
			liveSent, firstStatus = live, false
		}
		if reset {
			writeEvent(&buf, "reset", strconv.FormatUint(last, 10), s.resetHTML(sess, only, now))
			cursor = last
		}
		advanced := false
		for _, it := range changes {
			cursor = it.Revision
			if (only != "" && it.ID != only) || !s.visible(sess, it) {
				advanced = true
				continue
			}
			writeEvent(&buf, "request", strconv.FormatUint(it.Revision, 10), s.fragment(sess, it, only != "", now))
			advanced = false
		}
		if advanced {
			// Changes the page does not show still move its resume point.
			fmt.Fprintf(&buf, "id: %d\n\n", cursor)
		}
		if buf.Len() > 0 {
			if _, err := w.Write(buf.Bytes()); err != nil {
				return
			}
			buf.Reset()
			flusher.Flush()
		}
		expired := time.NewTimer(max(time.Millisecond, sess.Expires.Sub(now)))
		select {
		case <-r.Context().Done():
			expired.Stop()
			return
		case <-expired.C:
			// The session ended: the browser reconnects, is refused and logs in again.
			return
		case <-wake:
		case <-beat.C():
			buf.WriteString(": keep-alive\n\n")
		}
		expired.Stop()
	}
}

func writeEvent(buf *bytes.Buffer, event, id, data string) {
	if event != "" {
		fmt.Fprintf(buf, "event: %s\n", event)
	}
	if id != "" {
		fmt.Fprintf(buf, "id: %s\n", id)
	}
	for _, line := range strings.Split(data, "\n") {
		fmt.Fprintf(buf, "data: %s\n", strings.TrimRight(line, "\r"))
	}
	buf.WriteString("\n")
}

// fragment renders one request for an event: its inbox row, or the live part of its page.
func (s *Server) fragment(sess *session, it *item, detail bool, now time.Time) string {
	name := "row"
	if detail {
		name = "live"
	}
	out, err := s.views.fragment(name, s.view(sess, it, now, detail), s.sealer.csrfToken(sess.ID))
	if err != nil {
		s.log.Error("render event", "err", err)
	}
	return out
}

// resetHTML renders what a restarted stream replaces: the inbox's rows or the request's live part.
func (s *Server) resetHTML(sess *session, only string, now time.Time) string {
	if only != "" {
		it, _ := s.hub.get(only)
		if it == nil || !s.visible(sess, it) {
			return ""
		}
		return s.fragment(sess, it, true, now)
	}
	items, _, _ := s.hub.snapshot()
	var rows []*reqView
	for _, it := range items {
		if it.state(now) == approvals.StatePending && s.visible(sess, it) {
			rows = append(rows, s.view(sess, it, now, false))
		}
	}
	out, err := s.views.fragment("rows", rows, s.sealer.csrfToken(sess.ID))
	if err != nil {
		s.log.Error("render event", "err", err)
	}
	return out
}
