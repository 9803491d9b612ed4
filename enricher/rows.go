package enricher

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/gatehouse-dev/gatehouse/enricher/schema"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// columns is a column-oriented batch of rows for one table: each column is a slice, appended to
// row by row and handed to clickhouse-go whole, which is the cheapest way to build a block.
type columns struct {
	table  string
	names  []string
	values []func(lo, hi int) any // rows lo..hi-1 of the column's slice
	// appends append rows lo..hi-1 of the column's slice to a batch's column.
	appends []func(col driver.BatchColumn, lo, hi int) error
	// strs holds the slices of the columns of strings (nil for the others), boxes the values
	// already boxed for those that are LowCardinality columns.
	strs   []*[]string
	boxes  []map[string]any
	resets []func()
	rows   int
	// bytes is about the size of the rows' data, for bounding an INSERT.
	bytes int
	// srcs[i] is the message row i came from, when the consumer noted it.
	srcs []rowSource
}

// rowSource is the JetStream message a row came from.
type rowSource struct {
	stream, subject string
	sequence        uint64
}

func addColumn[T any](c *columns, name string, s *[]T) {
	c.names = append(c.names, name)
	c.values = append(c.values, func(lo, hi int) any { return (*s)[lo:hi] })
	c.appends = append(c.appends, appenderOf(s))
	strs, _ := any(s).(*[]string)
	c.strs = append(c.strs, strs)
	c.boxes = append(c.boxes, nil)
	c.resets = append(c.resets, func() {
		clear(*s)
		*s = (*s)[:0]
	})
}

// insertQuery returns the INSERT statement for the columns in db.
func (c *columns) insertQuery(db string) string {
	return "INSERT INTO " + db + "." + c.table + " (" + strings.Join(c.names, ", ") + ")"
}

// appenderOf returns how rows of *s go into a batch's column. clickhouse-go appends a slice of
// scalars without reflection, but takes a slice of arrays or maps apart with reflection, value
// by value, boxing each; those columns are appended row by row instead, arrays as []string
// (which it appends without reflection) and maps through mapRow.
func appenderOf[T any](s *[]T) func(driver.BatchColumn, int, int) error {
	switch p := any(s).(type) {
	case *[][]string:
		return func(col driver.BatchColumn, lo, hi int) error {
			for _, v := range (*p)[lo:hi] {
				if err := col.AppendRow(v); err != nil {
					return err
				}
			}
			return nil
		}
	case *[]map[string][]string:
		return mapAppender(p)
	case *[]map[string]string:
		return mapAppender(p)
	case *[]map[string]uint32:
		return mapAppender(p)
	}
	return func(col driver.BatchColumn, lo, hi int) error { return col.Append((*s)[lo:hi]) }
}

// maxBoxes bounds the boxed values kept for a LowCardinality column, and maxBoxedLen their
// length.
const (
	maxBoxes    = 1024
	maxBoxedLen = 256
)

// appendBoxed appends rows lo..hi-1 of column i, a LowCardinality column of strings, row by
// row. clickhouse-go boxes every value of a slice it is given in an interface, through
// reflection; the values of such a column repeat, so each is boxed once and kept.
func (c *columns) appendBoxed(col driver.BatchColumn, i, lo, hi int) error {
	boxes := c.boxes[i]
	if boxes == nil {
		boxes = make(map[string]any, 64)
		c.boxes[i] = boxes
	}
	for _, v := range (*c.strs[i])[lo:hi] {
		x, ok := boxes[v]
		if !ok {
			x = v
			if len(v) <= maxBoxedLen {
				if len(boxes) >= maxBoxes {
					clear(boxes)
				}
				boxes[v] = x
			}
		}
		if err := col.AppendRow(x); err != nil {
			return err
		}
	}
	return nil
}

// mapAppender appends the rows of a column of maps one by one, each through the same mapRow.
func mapAppender[V any](s *[]map[string]V) func(driver.BatchColumn, int, int) error {
	var r mapRow[V]
	return func(col driver.BatchColumn, lo, hi int) error {
		defer r.reset()
		for _, m := range (*s)[lo:hi] {
			if err := col.AppendRow(r.set(m)); err != nil {
				return err
			}
		}
		return nil
	}
}

// mapRow hands one row's map to a Map column as clickhouse-go's IterableOrderedMap, which it
// iterates without reflection.
type mapRow[V any] struct {
	keys []string
	vals []V
	i    int
}

var _ column.IterableOrderedMap = (*mapRow[string])(nil)

func (r *mapRow[V]) set(m map[string]V) *mapRow[V] {
	r.keys, r.vals, r.i = r.keys[:0], r.vals[:0], -1
	for k, v := range m {
		r.keys = append(r.keys, k)
		r.vals = append(r.vals, v)
	}
	return r
}

// reset drops the references to the last row's keys and values.
func (r *mapRow[V]) reset() {
	clear(r.keys)
	clear(r.vals)
	r.keys, r.vals = r.keys[:0], r.vals[:0]
}

// Put is part of IterableOrderedMap, for reading rows; appending never calls it.
func (r *mapRow[V]) Put(k, v any) {
	r.keys = append(r.keys, k.(string))
	r.vals = append(r.vals, v.(V))
}

func (r *mapRow[V]) Iterator() column.MapIterator { r.i = -1; return r }
func (r *mapRow[V]) Next() bool                   { r.i++; return r.i < len(r.keys) }
func (r *mapRow[V]) Key() any                     { return r.keys[r.i] }
func (r *mapRow[V]) Value() any                   { return r.vals[r.i] }

// appendTo appends rows lo..hi-1 of every column to a prepared batch.
func (c *columns) appendTo(b driver.Batch, lo, hi int) error {
	types := b.Columns()
	for i, appendRows := range c.appends {
		if c.strs[i] != nil && i < len(types) && strings.HasPrefix(string(types[i].Type()), "LowCardinality(") {
			appendRows = func(col driver.BatchColumn, lo, hi int) error { return c.appendBoxed(col, i, lo, hi) }
		}
		if err := appendRows(b.Column(i), lo, hi); err != nil {
			return fmt.Errorf("column %s.%s: %w", c.table, c.names[i], err)
		}
	}
	return nil
}

// row returns row i as a map of column name to value.
func (c *columns) row(i int) map[string]any {
	out := make(map[string]any, len(c.names))
	for j, v := range c.values {
		out[c.names[j]] = reflect.ValueOf(v(i, i+1)).Index(0).Interface()
	}
	return out
}

// source notes the message the rows added since the last call came from.
func (c *columns) source(src rowSource) {
	for len(c.srcs) < c.rows {
		c.srcs = append(c.srcs, src)
	}
}

func (c *columns) reset() {
	for _, r := range c.resets {
		r()
	}
	c.rows, c.bytes = 0, 0
	c.srcs = c.srcs[:0]
}

// metaColumns are the columns of a trail record's header, which every table of records starts
// with.
type metaColumns struct {
	id     []string
	time   []time.Time
	source []string
}

func (m *metaColumns) register(c *columns) {
	addColumn(c, "id", &m.id)
	addColumn(c, "time", &m.time)
	addColumn(c, "source", &m.source)
}

func (m *metaColumns) add(h trail.Meta) {
	m.id = append(m.id, h.ID)
	m.time = append(m.time, h.Time)
	m.source = append(m.source, h.Source)
}

// operationColumns are the columns of a trail.Operation (but its Path).
type operationColumns struct {
	verb, apiGroup, apiVersion, resource, subresource, namespace, name []string
}

func (o *operationColumns) register(c *columns) {
	addColumn(c, "verb", &o.verb)
	addColumn(c, "api_group", &o.apiGroup)
	addColumn(c, "api_version", &o.apiVersion)
	addColumn(c, "resource", &o.resource)
	addColumn(c, "subresource", &o.subresource)
	addColumn(c, "namespace", &o.namespace)
	addColumn(c, "name", &o.name)
}

func (o *operationColumns) add(op trail.Operation) {
	o.verb = append(o.verb, op.Verb)
	o.apiGroup = append(o.apiGroup, op.APIGroup)
	o.apiVersion = append(o.apiVersion, op.APIVersion)
	o.resource = append(o.resource, op.Resource)
	o.subresource = append(o.subresource, op.Subresource)
	o.namespace = append(o.namespace, op.Namespace)
	o.name = append(o.name, op.Name)
}

// eventRows are rows of audit_events.
type eventRows struct {
	columns
	auditID, stage                                          []string
	eventKey                                                []uint64
	received, stageAt                                       []time.Time
	level, verb, requestURI                                 []string
	apiGroup, apiVersion, resource, subresource, namespace  []string
	name, objectUID, user, userUID                          []string
	userGroups                                              [][]string
	userExtra                                               []map[string][]string
	authUser                                                []string
	authGroups                                              [][]string
	impersonated                                            []bool
	sessionID, issuer, subject, client, approvalID, origUsr []string
	actorKind                                               []string
	dryRun                                                  []bool
	admDecision, admPolicy, admRule, admAction              []string
	sourceIPs                                               [][]string
	userAgent                                               []string
	code                                                    []uint16
	status, reason, message                                 []string
	annotations                                             []map[string]string
	requestObject, responseObject                           []string
	maskedFields                                            []uint32
	maskedBy                                                []map[string]uint32
	truncated                                               []bool
	origin                                                  []string
	ingestedAt                                              []time.Time
}

func newEventRows() *eventRows {
	r := &eventRows{}
	c := &r.columns
	c.table = schema.TableAuditEvents
	addColumn(c, "audit_id", &r.auditID)
	addColumn(c, "stage", &r.stage)
	addColumn(c, "event_key", &r.eventKey)
	addColumn(c, "request_received_at", &r.received)
	addColumn(c, "stage_at", &r.stageAt)
	addColumn(c, "level", &r.level)
	addColumn(c, "verb", &r.verb)
	addColumn(c, "request_uri", &r.requestURI)
	addColumn(c, "api_group", &r.apiGroup)
	addColumn(c, "api_version", &r.apiVersion)
	addColumn(c, "resource", &r.resource)
	addColumn(c, "subresource", &r.subresource)
	addColumn(c, "namespace", &r.namespace)
	addColumn(c, "name", &r.name)
	addColumn(c, "object_uid", &r.objectUID)
	addColumn(c, "user", &r.user)
	addColumn(c, "user_uid", &r.userUID)
	addColumn(c, "user_groups", &r.userGroups)
	addColumn(c, "user_extra", &r.userExtra)
	addColumn(c, "authenticated_user", &r.authUser)
	addColumn(c, "authenticated_groups", &r.authGroups)
	addColumn(c, "impersonated", &r.impersonated)
	addColumn(c, "session_id", &r.sessionID)
	addColumn(c, "issuer", &r.issuer)
	addColumn(c, "subject", &r.subject)
	addColumn(c, "client", &r.client)
	addColumn(c, "approval_id", &r.approvalID)
	addColumn(c, "original_user", &r.origUsr)
	addColumn(c, "actor_kind", &r.actorKind)
	addColumn(c, "dry_run", &r.dryRun)
	addColumn(c, "admission_decision_id", &r.admDecision)
	addColumn(c, "admission_policy", &r.admPolicy)
	addColumn(c, "admission_rule", &r.admRule)
	addColumn(c, "admission_action", &r.admAction)
	addColumn(c, "source_ips", &r.sourceIPs)
	addColumn(c, "user_agent", &r.userAgent)
	addColumn(c, "code", &r.code)
	addColumn(c, "status", &r.status)
	addColumn(c, "reason", &r.reason)
	addColumn(c, "message", &r.message)
	addColumn(c, "annotations", &r.annotations)
	addColumn(c, "request_object", &r.requestObject)
	addColumn(c, "response_object", &r.responseObject)
	addColumn(c, "masked_fields", &r.maskedFields)
	addColumn(c, "masked_by", &r.maskedBy)
	addColumn(c, "truncated", &r.truncated)
	addColumn(c, "origin", &r.origin)
	addColumn(c, "ingested_at", &r.ingestedAt)
	return r
}

// add appends one event, attributed by attr.
func (r *eventRows) add(ev *auditEvent, st eventStats, origin string, attr *attribution, now time.Time) {
	r.rows++
	r.auditID = append(r.auditID, ev.AuditID)
	r.stage = append(r.stage, ev.Stage)
	r.eventKey = append(r.eventKey, eventKey(ev))
	r.received = append(r.received, ev.RequestReceivedTimestamp)
	r.stageAt = append(r.stageAt, ev.StageTimestamp)
	r.level = append(r.level, ev.Level)
	r.verb = append(r.verb, ev.Verb)
	r.requestURI = append(r.requestURI, ev.RequestURI)

	var ref objectRef
	if ev.ObjectRef != nil {
		ref = *ev.ObjectRef
	}
	r.apiGroup = append(r.apiGroup, ref.APIGroup)
	r.apiVersion = append(r.apiVersion, ref.APIVersion)
	r.resource = append(r.resource, ref.Resource)
	r.subresource = append(r.subresource, ref.Subresource)
	r.namespace = append(r.namespace, ref.Namespace)
	r.name = append(r.name, ref.Name)
	r.objectUID = append(r.objectUID, ref.UID)

	effective, impersonated := ev.User, false
	if ev.ImpersonatedUser != nil && ev.ImpersonatedUser.Username != "" {
		effective, impersonated = *ev.ImpersonatedUser, true
	}
	r.user = append(r.user, effective.Username)
	r.userUID = append(r.userUID, effective.UID)
	r.userGroups = append(r.userGroups, nonNil(effective.Groups))
	r.userExtra = append(r.userExtra, nonNilMap(effective.Extra))
	r.authUser = append(r.authUser, ev.User.Username)
	r.authGroups = append(r.authGroups, nonNil(ev.User.Groups))
	r.impersonated = append(r.impersonated, impersonated)

	// Session and approval come from the gateway's impersonation extras (which only the gateway's
	// own users can set) and from the audit annotations of Gatehouse's validating webhook (which
	// only that webhook can set), never from the annotations of the objects a request carries.
	x := gatewayExtras(ev, attr.trusted)
	adm := attr.admissionOf(ev.Annotations)
	r.sessionID = append(r.sessionID, x.SessionID)
	r.issuer = append(r.issuer, x.Issuer)
	r.subject = append(r.subject, x.Subject)
	r.client = append(r.client, x.Client)
	if x.ApprovalID == "" {
		x.ApprovalID = adm.approvalID
	}
	r.approvalID = append(r.approvalID, x.ApprovalID)
	r.origUsr = append(r.origUsr, x.OriginalUser)
	r.actorKind = append(r.actorKind, attr.actorKind(effective.Username, effective.Groups))
	r.dryRun = append(r.dryRun, isDryRun(ev))
	r.admDecision = append(r.admDecision, adm.decisionID)
	r.admPolicy = append(r.admPolicy, adm.policy)
	r.admRule = append(r.admRule, adm.rule)
	r.admAction = append(r.admAction, adm.action)

	r.sourceIPs = append(r.sourceIPs, nonNil(ev.SourceIPs))
	r.userAgent = append(r.userAgent, ev.UserAgent)
	var rs responseStatus
	if ev.ResponseStatus != nil {
		rs = *ev.ResponseStatus
	}
	r.code = append(r.code, uint16(min(max(rs.Code, 0), 65535)))
	r.status = append(r.status, rs.Status)
	r.reason = append(r.reason, rs.Reason)
	r.message = append(r.message, rs.Message)
	r.annotations = append(r.annotations, nonNilMap(ev.Annotations))
	r.requestObject = append(r.requestObject, rawObject(ev.RequestObject))
	r.responseObject = append(r.responseObject, rawObject(ev.ResponseObject))
	r.maskedFields = append(r.maskedFields, uint32(st.Fields))
	r.maskedBy = append(r.maskedBy, counts(st.Detectors))
	r.truncated = append(r.truncated, st.Truncated)
	r.origin = append(r.origin, origin)
	r.ingestedAt = append(r.ingestedAt, now)
}

// rawObject returns an embedded object's JSON, "" for none.
func rawObject(b []byte) string {
	if len(b) == 0 || string(b) == "null" {
		return ""
	}
	return string(b)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func nonNilMap[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return map[K]V{}
	}
	return m
}

// noCounts is the masked_by of the events in which nothing was masked (most); never written.
var noCounts = map[string]uint32{}

func counts(m map[string]int) map[string]uint32 {
	if len(m) == 0 {
		return noCounts
	}
	out := make(map[string]uint32, len(m))
	for k, v := range m {
		out[k] = uint32(v)
	}
	return out
}

// requestRows are rows of gateway_requests.
type requestRows struct {
	columns
	metaColumns
	operationColumns
	auditID, heldAuditID, sessionID, user, userUID    []string
	actorKind                                         []string
	dryRun                                            []bool
	userGroups                                        [][]string
	userExtra                                         []map[string][]string
	issuer, subject, client, sourceIP                 []string
	path                                              []string
	code                                              []uint16
	latency, duration, bytesIn, bytesOut              []int64
	maskedFields                                      []uint32
	maskedBy                                          []map[string]uint32
	policy, rule, action, decisionMessage, approvalID []string
	errMsg                                            []string
	ingestedAt                                        []time.Time
	streamColumns
}

func newRequestRows() *requestRows {
	r := &requestRows{}
	c := &r.columns
	c.table = schema.TableGatewayRequests
	r.metaColumns.register(c)
	addColumn(c, "audit_id", &r.auditID)
	addColumn(c, "held_audit_id", &r.heldAuditID)
	addColumn(c, "session_id", &r.sessionID)
	addColumn(c, "user", &r.user)
	addColumn(c, "actor_kind", &r.actorKind)
	addColumn(c, "user_uid", &r.userUID)
	addColumn(c, "user_groups", &r.userGroups)
	addColumn(c, "user_extra", &r.userExtra)
	addColumn(c, "issuer", &r.issuer)
	addColumn(c, "subject", &r.subject)
	addColumn(c, "client", &r.client)
	addColumn(c, "source_ip", &r.sourceIP)
	r.operationColumns.register(c)
	addColumn(c, "path", &r.path)
	addColumn(c, "code", &r.code)
	addColumn(c, "dry_run", &r.dryRun)
	addColumn(c, "latency_ns", &r.latency)
	addColumn(c, "duration_ns", &r.duration)
	addColumn(c, "bytes_in", &r.bytesIn)
	addColumn(c, "bytes_out", &r.bytesOut)
	addColumn(c, "masked_fields", &r.maskedFields)
	addColumn(c, "masked_by", &r.maskedBy)
	addColumn(c, "policy", &r.policy)
	addColumn(c, "rule", &r.rule)
	addColumn(c, "action", &r.action)
	addColumn(c, "decision_message", &r.decisionMessage)
	addColumn(c, "approval_id", &r.approvalID)
	addColumn(c, "error", &r.errMsg)
	addColumn(c, "ingested_at", &r.ingestedAt)
	r.streamColumns.register(c)
	return r
}

func (r *requestRows) add(rec *trail.Request, attr *attribution, now time.Time) {
	r.rows++
	r.metaColumns.add(rec.Meta)
	r.auditID = append(r.auditID, rec.AuditID)
	r.heldAuditID = append(r.heldAuditID, rec.HeldAuditID)
	r.sessionID = append(r.sessionID, rec.SessionID)
	r.user = append(r.user, rec.Identity.User)
	r.actorKind = append(r.actorKind, attr.actorKind(rec.Identity.User, rec.Identity.Groups))
	r.userUID = append(r.userUID, rec.Identity.UID)
	r.userGroups = append(r.userGroups, nonNil(rec.Identity.Groups))
	r.userExtra = append(r.userExtra, nonNilMap(rec.Identity.Extra))
	r.issuer = append(r.issuer, rec.Identity.Issuer)
	r.subject = append(r.subject, rec.Identity.Subject)
	r.client = append(r.client, rec.Client)
	r.sourceIP = append(r.sourceIP, rec.SourceIP)
	op := rec.Operation
	r.operationColumns.add(op)
	r.path = append(r.path, op.Path)
	r.code = append(r.code, uint16(min(max(rec.Code, 0), 65535)))
	r.dryRun = append(r.dryRun, rec.DryRun)
	r.latency = append(r.latency, int64(rec.Latency))
	r.duration = append(r.duration, int64(rec.Duration))
	r.bytesIn = append(r.bytesIn, rec.BytesIn)
	r.bytesOut = append(r.bytesOut, rec.BytesOut)
	var m trail.Masking
	if rec.Masking != nil {
		m = *rec.Masking
	}
	r.maskedFields = append(r.maskedFields, uint32(m.Fields))
	r.maskedBy = append(r.maskedBy, counts(m.Detectors))
	var p trail.Policy
	if rec.Decision != nil {
		p = *rec.Decision
	}
	r.policy = append(r.policy, p.Policy)
	r.rule = append(r.rule, p.Rule)
	r.action = append(r.action, p.Action)
	r.decisionMessage = append(r.decisionMessage, p.Message)
	r.approvalID = append(r.approvalID, rec.ApprovalID)
	r.errMsg = append(r.errMsg, rec.Error)
	r.ingestedAt = append(r.ingestedAt, now)
	r.streamColumns.add(rec)
}

// decisionRows are rows of gateway_decisions.
type decisionRows struct {
	columns
	metaColumns
	operationColumns
	component, auditID, admissionUID          []string
	sessionID, user                           []string
	userGroups                                [][]string
	issuer, subject                           []string
	viaGateway, dryRun, admitted              []bool
	policy, rule, action, message, approvalID []string
	ingestedAt                                []time.Time
	streamSequence                            []uint64
	recordIndex                               []uint32
}

func newDecisionRows() *decisionRows {
	r := &decisionRows{}
	c := &r.columns
	c.table = schema.TableGatewayDecisions
	r.metaColumns.register(c)
	addColumn(c, "component", &r.component)
	addColumn(c, "audit_id", &r.auditID)
	addColumn(c, "admission_uid", &r.admissionUID)
	addColumn(c, "session_id", &r.sessionID)
	addColumn(c, "user", &r.user)
	addColumn(c, "user_groups", &r.userGroups)
	addColumn(c, "issuer", &r.issuer)
	addColumn(c, "subject", &r.subject)
	r.operationColumns.register(c)
	addColumn(c, "via_gateway", &r.viaGateway)
	addColumn(c, "dry_run", &r.dryRun)
	addColumn(c, "admitted", &r.admitted)
	addColumn(c, "policy", &r.policy)
	addColumn(c, "rule", &r.rule)
	addColumn(c, "action", &r.action)
	addColumn(c, "message", &r.message)
	addColumn(c, "approval_id", &r.approvalID)
	addColumn(c, "ingested_at", &r.ingestedAt)
	addColumn(c, "stream_sequence", &r.streamSequence)
	addColumn(c, "record_index", &r.recordIndex)
	return r
}

// add appends a decision record, the index-th non-blank line (from 1) of the JetStream message
// of stream sequence seq: the order in which JetStream stored it, by which the views take a
// decision's first attempt.
func (r *decisionRows) add(d *trail.Decision, now time.Time, seq uint64, index uint32) {
	r.rows++
	r.metaColumns.add(d.Meta)
	r.component = append(r.component, d.Component)
	r.auditID = append(r.auditID, d.AuditID)
	r.admissionUID = append(r.admissionUID, d.AdmissionUID)
	r.sessionID = append(r.sessionID, d.SessionID)
	r.user = append(r.user, d.Identity.User)
	r.userGroups = append(r.userGroups, nonNil(d.Identity.Groups))
	r.issuer = append(r.issuer, d.Identity.Issuer)
	r.subject = append(r.subject, d.Identity.Subject)
	op := d.Operation
	r.operationColumns.add(op)
	r.viaGateway = append(r.viaGateway, d.ViaGateway)
	r.dryRun = append(r.dryRun, d.DryRun)
	r.admitted = append(r.admitted, d.Admitted)
	r.policy = append(r.policy, d.Policy.Policy)
	r.rule = append(r.rule, d.Policy.Rule)
	r.action = append(r.action, d.Policy.Action)
	r.message = append(r.message, d.Policy.Message)
	r.approvalID = append(r.approvalID, d.ApprovalID)
	r.ingestedAt = append(r.ingestedAt, now)
	r.streamSequence = append(r.streamSequence, seq)
	r.recordIndex = append(r.recordIndex, index)
}

// sessionRows are rows of sessions.
type sessionRows struct {
	columns
	metaColumns
	sessionID, label, event, user     []string
	userGroups                        [][]string
	issuer, subject, client, sourceIP []string
	started, lastActivity             []time.Time
	requests                          []int64
	ingestedAt                        []time.Time
}

func newSessionRows() *sessionRows {
	r := &sessionRows{}
	c := &r.columns
	c.table = schema.TableSessions
	r.metaColumns.register(c)
	addColumn(c, "session_id", &r.sessionID)
	addColumn(c, "label", &r.label)
	addColumn(c, "event", &r.event)
	addColumn(c, "user", &r.user)
	addColumn(c, "user_groups", &r.userGroups)
	addColumn(c, "issuer", &r.issuer)
	addColumn(c, "subject", &r.subject)
	addColumn(c, "client", &r.client)
	addColumn(c, "source_ip", &r.sourceIP)
	addColumn(c, "started", &r.started)
	addColumn(c, "last_activity", &r.lastActivity)
	addColumn(c, "requests", &r.requests)
	addColumn(c, "ingested_at", &r.ingestedAt)
	return r
}

func (r *sessionRows) add(s *trail.Session, now time.Time) {
	r.rows++
	r.metaColumns.add(s.Meta)
	r.sessionID = append(r.sessionID, s.SessionID)
	r.label = append(r.label, s.Label)
	r.event = append(r.event, string(s.Event))
	r.user = append(r.user, s.Identity.User)
	r.userGroups = append(r.userGroups, nonNil(s.Identity.Groups))
	r.issuer = append(r.issuer, s.Identity.Issuer)
	r.subject = append(r.subject, s.Identity.Subject)
	r.client = append(r.client, s.Client)
	r.sourceIP = append(r.sourceIP, s.SourceIP)
	r.started = append(r.started, s.Started)
	r.lastActivity = append(r.lastActivity, s.LastActivity)
	r.requests = append(r.requests, s.Requests)
	r.ingestedAt = append(r.ingestedAt, now)
}

// errorRows are rows of ingest_errors.
type errorRows struct {
	columns
	time       []time.Time
	stream     []string
	sequence   []uint64
	subject    []string
	bytes      []uint64
	errMsg     []string
	ingestedAt []time.Time
}

func newErrorRows() *errorRows {
	r := &errorRows{}
	c := &r.columns
	c.table = schema.TableIngestErrors
	addColumn(c, "time", &r.time)
	addColumn(c, "stream", &r.stream)
	addColumn(c, "stream_sequence", &r.sequence)
	addColumn(c, "subject", &r.subject)
	addColumn(c, "bytes", &r.bytes)
	addColumn(c, "error", &r.errMsg)
	addColumn(c, "ingested_at", &r.ingestedAt)
	return r
}

func (r *errorRows) add(at time.Time, stream string, seq uint64, subject string, size int, err error, now time.Time) {
	r.rows++
	r.time = append(r.time, at)
	r.stream = append(r.stream, stream)
	r.sequence = append(r.sequence, seq)
	r.subject = append(r.subject, subject)
	r.bytes = append(r.bytes, uint64(size))
	r.errMsg = append(r.errMsg, err.Error())
	r.ingestedAt = append(r.ingestedAt, now)
}

// approvalRows are rows of approvals.
type approvalRows struct {
	columns
	metaColumns
	operationColumns
	approvalID, event, sessionID, requester []string
	requesterGroups                         [][]string
	requesterIssuer, requesterSubject       []string
	originalUser, requesterReason           []string
	fingerprint                             []string
	policy, rule, policyMessage             []string
	approverGroups                          [][]string
	required                                []uint16
	actor, reason                           []string
	approvers                               [][]string
	path                                    []string
	expiresAt                               []time.Time
	admissionUID                            []string
	ingestedAt                              []time.Time
}

func newApprovalRows() *approvalRows {
	r := &approvalRows{}
	c := &r.columns
	c.table = schema.TableApprovals
	r.metaColumns.register(c)
	addColumn(c, "approval_id", &r.approvalID)
	addColumn(c, "event", &r.event)
	addColumn(c, "session_id", &r.sessionID)
	addColumn(c, "requester", &r.requester)
	addColumn(c, "requester_groups", &r.requesterGroups)
	addColumn(c, "requester_issuer", &r.requesterIssuer)
	addColumn(c, "requester_subject", &r.requesterSubject)
	addColumn(c, "original_user", &r.originalUser)
	addColumn(c, "requester_reason", &r.requesterReason)
	r.operationColumns.register(c)
	addColumn(c, "fingerprint", &r.fingerprint)
	addColumn(c, "policy", &r.policy)
	addColumn(c, "rule", &r.rule)
	addColumn(c, "policy_message", &r.policyMessage)
	addColumn(c, "approver_groups", &r.approverGroups)
	addColumn(c, "required", &r.required)
	addColumn(c, "actor", &r.actor)
	addColumn(c, "reason", &r.reason)
	addColumn(c, "approvers", &r.approvers)
	addColumn(c, "path", &r.path)
	addColumn(c, "expires_at", &r.expiresAt)
	addColumn(c, "admission_uid", &r.admissionUID)
	addColumn(c, "ingested_at", &r.ingestedAt)
	return r
}

func (r *approvalRows) add(a *trail.Approval, now time.Time) {
	r.rows++
	r.metaColumns.add(a.Meta)
	r.approvalID = append(r.approvalID, a.ApprovalID)
	r.event = append(r.event, string(a.Event))
	r.sessionID = append(r.sessionID, a.SessionID)
	r.requester = append(r.requester, a.Requester.User)
	r.requesterGroups = append(r.requesterGroups, nonNil(a.Requester.Groups))
	r.requesterIssuer = append(r.requesterIssuer, a.Requester.Issuer)
	r.requesterSubject = append(r.requesterSubject, a.Requester.Subject)
	r.originalUser = append(r.originalUser, a.OriginalUser)
	r.requesterReason = append(r.requesterReason, a.RequesterReason)
	op := a.Operation
	r.operationColumns.add(op)
	r.fingerprint = append(r.fingerprint, a.Fingerprint)
	r.policy = append(r.policy, a.Policy.Policy)
	r.rule = append(r.rule, a.Policy.Rule)
	r.policyMessage = append(r.policyMessage, a.Policy.Message)
	r.approverGroups = append(r.approverGroups, nonNil(a.ApproverGroups))
	r.required = append(r.required, uint16(min(max(a.Required, 0), 65535)))
	r.actor = append(r.actor, a.Actor)
	r.reason = append(r.reason, a.Reason)
	r.approvers = append(r.approvers, nonNil(a.Approvers))
	r.path = append(r.path, a.Path)
	r.expiresAt = append(r.expiresAt, a.Expires)
	r.admissionUID = append(r.admissionUID, a.AdmissionUID)
	r.ingestedAt = append(r.ingestedAt, now)
}

// deadLetterRows are rows of dead_letters: rows ClickHouse rejected for good.
type deadLetterRows struct {
	columns
	time        []time.Time
	targetTable []string
	recordKey   []string
	stream      []string
	sequence    []uint64
	subject     []string
	errMsg      []string
	row         []string
	ingestedAt  []time.Time
}

func newDeadLetterRows() *deadLetterRows {
	r := &deadLetterRows{}
	c := &r.columns
	c.table = schema.TableDeadLetters
	addColumn(c, "time", &r.time)
	addColumn(c, "target_table", &r.targetTable)
	addColumn(c, "record_key", &r.recordKey)
	addColumn(c, "stream", &r.stream)
	addColumn(c, "stream_sequence", &r.sequence)
	addColumn(c, "subject", &r.subject)
	addColumn(c, "error", &r.errMsg)
	addColumn(c, "row", &r.row)
	addColumn(c, "ingested_at", &r.ingestedAt)
	return r
}

func (r *deadLetterRows) add(at time.Time, table, key string, src rowSource, err error, row string, now time.Time) {
	r.rows++
	r.time = append(r.time, at)
	r.targetTable = append(r.targetTable, table)
	r.recordKey = append(r.recordKey, key)
	r.stream = append(r.stream, src.stream)
	r.sequence = append(r.sequence, src.sequence)
	r.subject = append(r.subject, src.subject)
	r.errMsg = append(r.errMsg, err.Error())
	r.row = append(r.row, row)
	r.ingestedAt = append(r.ingestedAt, now)
}
