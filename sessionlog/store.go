package sessionlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/gatehouse-dev/gatehouse/enricher/schema"
	"github.com/gatehouse-dev/gatehouse/recording"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// ErrNotFound is returned for a session or recording the store does not hold.
var ErrNotFound = errors.New("sessionlog: not found")

// Store reads sessions from the enricher's ClickHouse database. It only reads.
type Store struct {
	conn driver.Conn
	db   string
}

// New returns a Store reading database (schema.DefaultDatabase when empty) over conn.
func New(conn driver.Conn, database string) (*Store, error) {
	if database == "" {
		database = schema.DefaultDatabase
	}
	o := schema.Options{Database: database}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return &Store{conn: conn, db: database}, nil
}

func (s *Store) q(query string) string { return strings.ReplaceAll(query, "{db}", s.db) }

// Session summarises one session.
type Session struct {
	ID           string    `json:"id"`
	Label        string    `json:"label,omitempty"`
	User         string    `json:"user"`
	Issuer       string    `json:"issuer,omitempty"`
	Client       string    `json:"client,omitempty"`
	SourceIP     string    `json:"sourceIP,omitempty"`
	Started      time.Time `json:"started"`
	LastActivity time.Time `json:"lastActivity"`
	Requests     int64     `json:"requests"`
	Recordings   int       `json:"recordings"`
}

// Filter selects sessions: those that match every field set.
type Filter struct {
	// User, when set, selects that user's sessions.
	User string
	// IDs, when set, selects only these sessions.
	IDs []string
	// Since, when set, selects sessions active since then.
	Since time.Time
	// Until, when set, selects sessions started before then.
	Until time.Time
	// WithRecordings selects only sessions with at least one recording (exec, attach or
	// port-forward).
	WithRecordings bool
	// Limit bounds the number of sessions, the most recently active first. Default 100.
	Limit int
}

// maxTime is the latest time a DateTime64 holds: the default end of a Filter.
var maxTime = time.Date(2299, 12, 31, 0, 0, 0, 0, time.UTC)

// List returns the sessions the filter selects, the most recently active first.
func (s *Store) List(ctx context.Context, f Filter) ([]Session, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	until := f.Until
	if until.IsZero() || until.After(maxTime) {
		until = maxTime
	}
	rows, err := s.conn.Query(ctx, s.q(`
		SELECT session_id, label, user, issuer, client, source_ip, started, last_activity, requests,
		       ifNull(r.n, 0)
		FROM {db}.session_summary AS ss
		LEFT JOIN (SELECT session_id, toUInt64(count()) AS n FROM {db}.recording_summary GROUP BY session_id) AS r
		       ON r.session_id = ss.session_id
		WHERE ({user:String} = '' OR user = {user:String}) AND last_activity >= {since:DateTime64(6)}
		  AND started < {until:DateTime64(6)}
		  AND (empty({ids:Array(String)}) OR has({ids:Array(String)}, ss.session_id))
		  AND (NOT {recorded:Bool} OR ifNull(r.n, 0) > 0)
		ORDER BY last_activity DESC
		LIMIT {limit:UInt32}`),
		clickhouse.Named("user", f.User), clickhouse.Named("since", f.Since.UTC().Format("2006-01-02 15:04:05.000000")),
		clickhouse.Named("until", until.UTC().Format("2006-01-02 15:04:05.000000")),
		clickhouse.Named("ids", f.IDs), clickhouse.Named("recorded", fmt.Sprint(f.WithRecordings)),
		clickhouse.Named("limit", fmt.Sprint(f.Limit)))
	if err != nil {
		return nil, fmt.Errorf("sessionlog: list sessions: %w", err)
	}
	defer rows.Close()
	var out []Session
	for rows.Next() {
		var x Session
		var requests int64
		var recs uint64
		if err := rows.Scan(&x.ID, &x.Label, &x.User, &x.Issuer, &x.Client, &x.SourceIP, &x.Started, &x.LastActivity, &requests, &recs); err != nil {
			return nil, fmt.Errorf("sessionlog: list sessions: %w", err)
		}
		x.Requests, x.Recordings = requests, int(recs)
		out = append(out, x)
	}
	return out, rows.Err()
}

// Session returns the summary of one session.
func (s *Store) Session(ctx context.Context, id string) (*Session, error) {
	list, err := s.List(ctx, Filter{IDs: []string{id}, Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("%w: session %s", ErrNotFound, id)
	}
	return &list[0], nil
}

// Entry is one event of a session's timeline: an API call (with what decided it, its approval,
// its outcome and a summary of what it carried, masked), with the terminal or port-forward
// session it opened, if any.
type Entry struct {
	Time    time.Time `json:"time"`
	AuditID string    `json:"auditID,omitempty"`
	// Route is gateway, gateway-only (the gateway refused it, or no audit event), pending or
	// bypass (see the trail view).
	Route  string   `json:"route"`
	User   string   `json:"user"`
	Groups []string `json:"groups,omitempty"`
	// OriginalUser is the verified user when the call impersonated another (kubectl --as).
	OriginalUser string `json:"originalUser,omitempty"`
	Verb         string `json:"verb"`
	Resource     string `json:"resource,omitempty"`
	Subresource  string `json:"subresource,omitempty"`
	Namespace    string `json:"namespace,omitempty"`
	Name         string `json:"name,omitempty"`
	// URI is the request URI as audited (masked).
	URI  string `json:"uri,omitempty"`
	Code int    `json:"code"`
	// Message is the API server's or the gateway's message for a failed call.
	Message string `json:"message,omitempty"`
	// Decision is the policy decision that applied, if any.
	Decision *Decision `json:"decision,omitempty"`
	// Approval is the approval the call waited for or was sent under, if any.
	Approval *Approval `json:"approval,omitempty"`
	// Masked counts the values masked in the call's request, response and audit event, by
	// what masked them.
	Masked   int               `json:"masked,omitempty"`
	MaskedBy map[string]uint32 `json:"maskedBy,omitempty"`
	// Payload summarises the request's object: its kind and name, and the top-level fields it
	// sets (masked as stored).
	Payload string `json:"payload,omitempty"`
	// Open is set for a long request whose end the gateway has not recorded.
	Open bool `json:"open,omitempty"`
	// Recording is the recording of the exec, attach or port-forward session the call opened.
	Recording *RecordingSummary `json:"recording,omitempty"`
}

// Decision is a policy decision in a timeline.
type Decision struct {
	Component string `json:"component"`
	Policy    string `json:"policy,omitempty"`
	Rule      string `json:"rule,omitempty"`
	Action    string `json:"action"`
	Message   string `json:"message,omitempty"`
}

// Approval is an approval in a timeline.
type Approval struct {
	ID        string   `json:"id"`
	State     string   `json:"state,omitempty"`
	Approvers []string `json:"approvers,omitempty"`
}

// RecordingSummary describes a recording and, for a terminal, what was run in it.
type RecordingSummary struct {
	ID          string    `json:"id"`
	SessionID   string    `json:"sessionID"`
	AuditID     string    `json:"auditID,omitempty"`
	Format      string    `json:"format"`
	Subresource string    `json:"subresource"`
	Namespace   string    `json:"namespace,omitempty"`
	Pod         string    `json:"pod,omitempty"`
	Container   string    `json:"container,omitempty"`
	Command     []string  `json:"command,omitempty"`
	User        string    `json:"user,omitempty"`
	Started     time.Time `json:"started"`
	Chunks      int       `json:"chunks"`
	// Complete is set once the final chunk and every chunk before it are stored.
	Complete bool `json:"complete"`
	// Typed are the lines typed in a terminal session (masked), in order, at most maxTyped.
	Typed []string `json:"typed,omitempty"`
	// ExitStatus is the command's exit status, when the recording has one.
	ExitStatus *int `json:"exitStatus,omitempty"`
	// Connections counts a port-forward's connections.
	Connections int `json:"connections,omitempty"`
}

// maxTyped bounds the typed lines a timeline shows per terminal session.
const maxTyped = 200

// stageRank orders the rows the trail view has for one call: the complete one is the call.
func stageRank(stage string) int {
	switch stage {
	case "ResponseComplete", "Panic":
		return 3
	case "ResponseStarted":
		return 2
	case "":
		return 1
	}
	return 0
}

// Timeline returns every call of a session in time order, with its terminal and port-forward
// sessions and what was run in them.
func (s *Store) Timeline(ctx context.Context, sessionID string) ([]Entry, error) {
	rows, err := s.conn.Query(ctx, s.q(`
		SELECT time, stage, audit_id, route, user, user_groups, original_user, verb, resource, subresource, namespace, name,
		       request_uri, code, gateway_code, message, gateway_error, decision_component, decision_policy, decision_rule,
		       decision_action, decision_message, approval_id, approval_state, approvers, masked_fields, masked_by,
		       request_object, gateway_phase, recording_id
		FROM {db}.trail WHERE session_id = {s:String}
		ORDER BY time, audit_id`), clickhouse.Named("s", sessionID))
	if err != nil {
		return nil, fmt.Errorf("sessionlog: timeline of %s: %w", sessionID, err)
	}
	defer rows.Close()
	type ranked struct {
		e    Entry
		rank int
		rec  string
	}
	var order []string
	byID := map[string]*ranked{}
	for rows.Next() {
		var (
			e                                                Entry
			stage, gwErr, reqObj, phase, recID, apState      string
			dComp, dPolicy, dRule, dAction, dMsg, approvalID string
			code, gwCode                                     uint16
			masked                                           uint32
			approvers                                        []string
		)
		if err := rows.Scan(&e.Time, &stage, &e.AuditID, &e.Route, &e.User, &e.Groups, &e.OriginalUser, &e.Verb, &e.Resource,
			&e.Subresource, &e.Namespace, &e.Name, &e.URI, &code, &gwCode, &e.Message, &gwErr, &dComp, &dPolicy, &dRule,
			&dAction, &dMsg, &approvalID, &apState, &approvers, &masked, &e.MaskedBy, &reqObj, &phase, &recID); err != nil {
			return nil, fmt.Errorf("sessionlog: timeline of %s: %w", sessionID, err)
		}
		e.Code = int(code)
		if e.Code == 0 {
			e.Code = int(gwCode)
		}
		if e.Message == "" {
			e.Message = gwErr
		}
		if dAction != "" {
			e.Decision = &Decision{Component: dComp, Policy: dPolicy, Rule: dRule, Action: dAction, Message: dMsg}
		}
		if approvalID != "" {
			e.Approval = &Approval{ID: approvalID, State: apState, Approvers: approvers}
		}
		e.Masked = int(masked)
		if len(e.MaskedBy) == 0 {
			e.MaskedBy = nil
		}
		e.Payload = payloadSummary(reqObj)
		e.Open = phase == string(trail.PhaseOpen)
		key := e.AuditID
		if key == "" {
			key = fmt.Sprintf("row-%d", len(order))
		}
		r := &ranked{e: e, rank: stageRank(stage), rec: recID}
		if prev, ok := byID[key]; ok {
			if r.rank > prev.rank {
				if r.rec == "" {
					r.rec = prev.rec
				}
				byID[key] = r
			}
			continue
		}
		byID[key] = r
		order = append(order, key)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	recs, err := s.Recordings(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	recByAudit := map[string]*RecordingSummary{}
	recByID := map[string]*RecordingSummary{}
	for i := range recs {
		recByAudit[recs[i].AuditID] = &recs[i]
		recByID[recs[i].ID] = &recs[i]
	}
	var out []Entry
	used := map[string]bool{}
	for _, key := range order {
		r := byID[key]
		rs := recByID[r.rec]
		if rs == nil {
			rs = recByAudit[r.e.AuditID]
		}
		if rs != nil && !used[rs.ID] {
			used[rs.ID] = true
			r.e.Recording = rs
		}
		out = append(out, r.e)
	}
	// Recordings of calls the trail does not show yet (their audit events are on their way).
	for i := range recs {
		if !used[recs[i].ID] {
			rs := &recs[i]
			out = append(out, Entry{Time: rs.Started, AuditID: rs.AuditID, Route: "gateway", User: rs.User, Verb: "create",
				Resource: "pods", Subresource: rs.Subresource, Namespace: rs.Namespace, Name: rs.Pod, Recording: rs})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}

// payloadSummary summarises a request object (masked JSON): its kind and name and the
// top-level fields it sets besides apiVersion, kind and metadata.
func payloadSummary(obj string) string {
	if obj == "" {
		return ""
	}
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(obj), &m) != nil {
		var arr []json.RawMessage
		if json.Unmarshal([]byte(obj), &arr) == nil {
			return fmt.Sprintf("JSON patch of %d operations", len(arr))
		}
		return ""
	}
	var kind string
	_ = json.Unmarshal(m["kind"], &kind)
	var meta struct {
		Name, GenerateName, Namespace string
	}
	_ = json.Unmarshal(m["metadata"], &meta)
	var fields []string
	for k, v := range m {
		switch k {
		case "apiVersion", "kind", "metadata":
			continue
		}
		var sub map[string]json.RawMessage
		if json.Unmarshal(v, &sub) == nil && len(sub) > 0 {
			keys := make([]string, 0, len(sub))
			for sk := range sub {
				keys = append(keys, sk)
			}
			sort.Strings(keys)
			if len(keys) > 6 {
				keys = append(keys[:6], "…")
			}
			fields = append(fields, k+"{"+strings.Join(keys, ",")+"}")
			continue
		}
		fields = append(fields, k)
	}
	sort.Strings(fields)
	name := meta.Name
	if name == "" && meta.GenerateName != "" {
		name = meta.GenerateName + "*"
	}
	var b strings.Builder
	b.WriteString(strings.TrimSpace(kind + " " + name))
	if len(fields) > 0 {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(strings.Join(fields, " "))
	}
	return b.String()
}

// Recordings returns the recordings of a session, with what was run in them.
func (s *Store) Recordings(ctx context.Context, sessionID string) ([]RecordingSummary, error) {
	rows, err := s.conn.Query(ctx, s.q(`
		SELECT recording_id, session_id, audit_id, format, subresource, namespace, pod, container, command, user,
		       started, chunks, complete
		FROM {db}.recording_summary WHERE session_id = {s:String} ORDER BY started`), clickhouse.Named("s", sessionID))
	if err != nil {
		return nil, fmt.Errorf("sessionlog: recordings of %s: %w", sessionID, err)
	}
	defer rows.Close()
	var out []RecordingSummary
	for rows.Next() {
		var r RecordingSummary
		var chunks uint64
		if err := rows.Scan(&r.ID, &r.SessionID, &r.AuditID, &r.Format, &r.Subresource, &r.Namespace, &r.Pod, &r.Container,
			&r.Command, &r.User, &r.Started, &chunks, &r.Complete); err != nil {
			return nil, fmt.Errorf("sessionlog: recordings of %s: %w", sessionID, err)
		}
		r.Chunks = int(chunks)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		rec, err := s.Recording(ctx, out[i].ID)
		if err != nil {
			return nil, err
		}
		rec.describe(&out[i])
	}
	return out, nil
}

// Recording is a stored recording: its chunks in order.
type Recording struct {
	ID     string
	Chunks []*trail.Recording
}

// Recording reads a recording's chunks.
func (s *Store) Recording(ctx context.Context, id string) (*Recording, error) {
	rows, err := s.conn.Query(ctx, s.q(`
		SELECT recording_id, seq, session_id, audit_id, start, time, source, final, format, subresource, namespace, pod,
		       container, command, user, data, prev_hash, hash
		FROM {db}.session_recordings FINAL WHERE recording_id = {id:String} ORDER BY seq`), clickhouse.Named("id", id))
	if err != nil {
		return nil, fmt.Errorf("sessionlog: recording %s: %w", id, err)
	}
	defer rows.Close()
	r := &Recording{ID: id}
	for rows.Next() {
		c := &trail.Recording{}
		if err := rows.Scan(&c.RecordingID, &c.Seq, &c.SessionID, &c.AuditID, &c.Start, &c.Time, &c.Source, &c.Final, &c.Format,
			&c.Subresource, &c.Namespace, &c.Pod, &c.Container, &c.Command, &c.User, &c.Data, &c.Prev, &c.Hash); err != nil {
			return nil, fmt.Errorf("sessionlog: recording %s: %w", id, err)
		}
		c.ID = trail.ChunkID(c.RecordingID, c.Seq)
		if len(c.Command) == 0 {
			c.Command = nil
		}
		r.Chunks = append(r.Chunks, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(r.Chunks) == 0 {
		return nil, fmt.Errorf("%w: recording %s", ErrNotFound, id)
	}
	return r, nil
}

// Verify checks the recording's hash chain (trail.VerifyChain) and returns its head.
func (r *Recording) Verify() (string, error) { return trail.VerifyChain(r.Chunks) }

// Format is the recording's format.
func (r *Recording) Format() string { return r.Chunks[0].Format }

// Data returns the recording's data: its chunks' data in order.
func (r *Recording) Data() string {
	var b strings.Builder
	for _, c := range r.Chunks {
		b.WriteString(c.Data)
	}
	return b.String()
}

// Cast decodes a terminal recording.
func (r *Recording) Cast() (*recording.Cast, error) {
	if f := r.Format(); f != trail.FormatAsciicast {
		return nil, fmt.Errorf("sessionlog: recording %s is %s, not a terminal recording", r.ID, f)
	}
	return recording.Decode(strings.NewReader(r.Data()))
}

// describe fills in what was run in a recording.
func (r *Recording) describe(s *RecordingSummary) {
	if r.Format() == trail.FormatPortForward {
		for line := range strings.SplitSeq(r.Data(), "\n") {
			if strings.Contains(line, `"event":"open"`) {
				s.Connections++
			}
		}
		return
	}
	cast, err := r.Cast()
	if err != nil {
		return
	}
	if st, ok := cast.ExitStatus(); ok {
		s.ExitStatus = &st
	}
	s.Typed = typedLines(cast.Input(), maxTyped)
}

// typedLines splits what was typed into lines, with backspaces applied and other control
// characters dropped.
func typedLines(in string, limit int) []string {
	var out []string
	var cur []rune
	flush := func() {
		if line := strings.TrimSpace(string(cur)); line != "" && len(out) < limit {
			out = append(out, line)
		}
		cur = cur[:0]
	}
	for _, r := range in {
		switch {
		case r == '\r' || r == '\n':
			flush()
		case r == 0x7f || r == '\b':
			if len(cur) > 0 {
				cur = cur[:len(cur)-1]
			}
		case r == 0x04: // ^D
			flush()
		case unicode.IsControl(r):
		default:
			cur = append(cur, r)
		}
	}
	flush()
	return out
}

// Writes returns the writes of a session as kube-apiserver audited them (complete stage, with
// their masked request and response objects), in order: what Replay re-issues. Calls that open
// streams (exec, attach, port-forward, proxy) are not writes to replay.
func (s *Store) Writes(ctx context.Context, sessionID string) ([]Call, error) {
	rows, err := s.conn.Query(ctx, s.q(`
		SELECT request_received_at, audit_id, verb, api_group, api_version, resource, subresource, namespace, name,
		       request_uri, code, request_object, response_object, user, user_groups
		FROM {db}.audit_events FINAL
		WHERE session_id = {s:String} AND stage = 'ResponseComplete'
		  AND verb IN ('create', 'update', 'patch', 'delete', 'deletecollection')
		  AND subresource NOT IN ('exec', 'attach', 'portforward', 'proxy')
		ORDER BY request_received_at, audit_id`), clickhouse.Named("s", sessionID))
	if err != nil {
		return nil, fmt.Errorf("sessionlog: writes of %s: %w", sessionID, err)
	}
	defer rows.Close()
	var out []Call
	for rows.Next() {
		var c Call
		var code uint16
		if err := rows.Scan(&c.Time, &c.AuditID, &c.Verb, &c.Group, &c.Version, &c.Resource, &c.Subresource, &c.Namespace, &c.Name,
			&c.URI, &code, &c.RequestObject, &c.ResponseObject, &c.User, &c.Groups); err != nil {
			return nil, fmt.Errorf("sessionlog: writes of %s: %w", sessionID, err)
		}
		c.Code = int(code)
		out = append(out, c)
	}
	return out, rows.Err()
}
