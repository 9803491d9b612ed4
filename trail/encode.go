package trail

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/gatehouse-dev/gatehouse/jsonlex"
)

// Encoding the records admission and the proxy publish for every review and every request.
//
// encoding/json spends most of its time on reflection and on the escaping of every string; a
// Decision is published for every admission review, a Request for every request through the
// proxy. appendJSON writes exactly the bytes json.Marshal writes for the record
// (TestDecisionJSON, FuzzDecisionJSON, TestRequestJSON and FuzzRequestJSON compare them), and
// falls back to json.Marshal for what it does not write itself.

// marshal encodes a record as json.Marshal does.
func marshal(r Record) ([]byte, error) {
	switch r := r.(type) {
	case *Decision:
		if data, ok := r.appendJSON(make([]byte, 0, 1024)); ok {
			return data, nil
		}
	case *Request:
		// The proxy publishes one for every request.
		if data, ok := r.appendJSON(make([]byte, 0, 1024)); ok {
			return data, nil
		}
	}
	return json.Marshal(r)
}

// appendJSON appends the request record as json.Marshal encodes it, under the conditions of
// Decision.appendJSON.
func (r *Request) appendJSON(b []byte) ([]byte, bool) {
	b, ok := r.Meta.appendJSON(b)
	if !ok {
		return nil, false
	}
	b = append(b, `,"auditID":`...)
	b = appendString(b, r.AuditID)
	b = appendOmitEmpty(b, `,"heldAuditID":`, r.HeldAuditID)
	b = appendOmitEmpty(b, `,"sessionID":`, r.SessionID)
	b = append(b, `,"identity":`...)
	b = r.Identity.appendJSON(b)
	b = appendOmitEmpty(b, `,"client":`, r.Client)
	b = appendOmitEmpty(b, `,"sourceIP":`, r.SourceIP)
	b = append(b, `,"operation":`...)
	b = r.Operation.appendJSON(b)
	b = append(b, `,"code":`...)
	b = strconv.AppendInt(b, int64(r.Code), 10)
	if r.DryRun {
		b = append(b, `,"dryRun":true`...)
	}
	b = append(b, `,"latencyNs":`...)
	b = strconv.AppendInt(b, int64(r.Latency), 10)
	b = append(b, `,"durationNs":`...)
	b = strconv.AppendInt(b, int64(r.Duration), 10)
	b = append(b, `,"bytesIn":`...)
	b = strconv.AppendInt(b, r.BytesIn, 10)
	b = append(b, `,"bytesOut":`...)
	b = strconv.AppendInt(b, r.BytesOut, 10)
	if r.Masking != nil {
		b = append(b, `,"masking":{"fields":`...)
		b = strconv.AppendInt(b, int64(r.Masking.Fields), 10)
		if len(r.Masking.Detectors) > 0 {
			b = append(b, `,"detectors":{`...)
			keys := make([]string, 0, len(r.Masking.Detectors))
			for k := range r.Masking.Detectors {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for i, k := range keys {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendString(b, k)
				b = append(b, ':')
				b = strconv.AppendInt(b, int64(r.Masking.Detectors[k]), 10)
			}
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	if r.Decision != nil {
		b = append(b, `,"decision":`...)
		b = r.Decision.appendJSON(b)
	}
	b = appendOmitEmpty(b, `,"approvalID":`, r.ApprovalID)
	b = appendOmitEmpty(b, `,"error":`, r.Error)
	b = appendOmitEmpty(b, `,"phase":`, string(r.Phase))
	b = appendOmitEmpty(b, `,"recordingID":`, r.RecordingID)
	return append(b, '}'), true
}

// appendJSON appends the opening brace and the header's members. It reports false unless the
// time is in UTC and within the years json.Marshal accepts (0-9999).
func (m *Meta) appendJSON(b []byte) ([]byte, bool) {
	if y := m.Time.Year(); y < 0 || y > 9999 || m.Time.Location() != time.UTC {
		return nil, false
	}
	b = append(b, `{"apiVersion":`...)
	b = appendString(b, m.APIVersion)
	b = append(b, `,"kind":`...)
	b = appendString(b, string(m.Kind))
	b = append(b, `,"id":`...)
	b = appendString(b, m.ID)
	b = append(b, `,"time":"`...)
	b = m.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	return appendOmitEmpty(b, `,"source":`, m.Source), true
}

// appendJSON appends the decision as json.Marshal encodes it. It reports false, leaving the
// encoding to json.Marshal, unless the time is in UTC (as Publish makes it) and within the
// years json.Marshal accepts (0-9999).
func (d *Decision) appendJSON(b []byte) ([]byte, bool) {
	b, ok := d.Meta.appendJSON(b)
	if !ok {
		return nil, false
	}
	b = append(b, `,"component":`...)
	b = appendString(b, d.Component)
	b = appendOmitEmpty(b, `,"auditID":`, d.AuditID)
	b = appendOmitEmpty(b, `,"admissionUID":`, d.AdmissionUID)
	b = appendOmitEmpty(b, `,"sessionID":`, d.SessionID)
	b = append(b, `,"identity":`...)
	b = d.Identity.appendJSON(b)
	b = append(b, `,"operation":`...)
	b = d.Operation.appendJSON(b)
	b = append(b, `,"viaGateway":`...)
	b = appendBool(b, d.ViaGateway)
	if d.DryRun {
		b = append(b, `,"dryRun":true`...)
	}
	b = append(b, `,"policy":`...)
	b = d.Policy.appendJSON(b)
	b = append(b, `,"admitted":`...)
	b = appendBool(b, d.Admitted)
	b = appendOmitEmpty(b, `,"approvalID":`, d.ApprovalID)
	return append(b, '}'), true
}

func (id *Identity) appendJSON(b []byte) []byte {
	b = append(b, `{"user":`...)
	b = appendString(b, id.User)
	b = appendOmitEmpty(b, `,"uid":`, id.UID)
	if len(id.Groups) > 0 {
		b = append(b, `,"groups":`...)
		b = appendStrings(b, id.Groups)
	}
	if len(id.Extra) > 0 {
		b = append(b, `,"extra":{`...)
		keys := make([]string, 0, len(id.Extra))
		for k := range id.Extra {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			if vs := id.Extra[k]; vs == nil {
				b = append(b, "null"...)
			} else {
				b = appendStrings(b, vs)
			}
		}
		b = append(b, '}')
	}
	b = appendOmitEmpty(b, `,"issuer":`, id.Issuer)
	b = appendOmitEmpty(b, `,"subject":`, id.Subject)
	return append(b, '}')
}

func (op *Operation) appendJSON(b []byte) []byte {
	b = append(b, `{"verb":`...)
	b = appendString(b, op.Verb)
	b = appendOmitEmpty(b, `,"apiGroup":`, op.APIGroup)
	b = appendOmitEmpty(b, `,"apiVersion":`, op.APIVersion)
	b = appendOmitEmpty(b, `,"resource":`, op.Resource)
	b = appendOmitEmpty(b, `,"subresource":`, op.Subresource)
	b = appendOmitEmpty(b, `,"namespace":`, op.Namespace)
	b = appendOmitEmpty(b, `,"name":`, op.Name)
	b = appendOmitEmpty(b, `,"path":`, op.Path)
	return append(b, '}')
}

func (p *Policy) appendJSON(b []byte) []byte {
	b = append(b, '{')
	comma := false
	if p.Policy != "" {
		b = append(b, `"policy":`...)
		b = appendString(b, p.Policy)
		comma = true
	}
	if p.Rule != "" {
		if comma {
			b = append(b, ',')
		}
		b = append(b, `"rule":`...)
		b = appendString(b, p.Rule)
		comma = true
	}
	if comma {
		b = append(b, ',')
	}
	b = append(b, `"action":`...)
	b = appendString(b, p.Action)
	b = appendOmitEmpty(b, `,"message":`, p.Message)
	return append(b, '}')
}

// appendOmitEmpty appends the member name and s, unless s is empty.
func appendOmitEmpty(b []byte, name, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(append(b, name...), s)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, "true"...)
	}
	return append(b, "false"...)
}

func appendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// appendString appends s as a JSON string, escaped as json.Marshal escapes it.
func appendString(b []byte, s string) []byte { return jsonlex.AppendQuoted(b, s) }
