package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/endpoints/request"

	"github.com/gatehouse-dev/gatehouse/trail"
)

// This file holds the records that must be stored before the client sees something: the open
// record of a long request, written before it is forwarded, and the record of a write, stored
// before its answer is passed on.

// isLong reports a request that can stay open for as long as the client wants: a watch, followed
// logs, and protocol upgrades (exec, attach, port-forward, WebSocket watches and logs).
func isLong(r *http.Request, info *request.RequestInfo, upgrade bool) bool {
	if upgrade || info.Verb == "watch" {
		return true
	}
	if r.URL.RawQuery == "" {
		// Nothing to parse: Query would return an empty map.
		return false
	}
	q := r.URL.Query()
	if info.Subresource == "log" && q.Get("follow") == "true" {
		return true
	}
	return q.Get("watch") == "true" || q.Get("watch") == "1"
}

// isWrite reports a request that changes state: its record is stored before its answer is
// passed on.
func isWrite(info *request.RequestInfo) bool {
	switch info.Verb {
	case "create", "update", "patch", "delete", "deletecollection":
		return info.IsResourceRequest
	}
	return false
}

// errUnrecorded is returned by the steps that could not store a record the client must not act
// without.
var errUnrecorded = errors.New("the trail could not store the record")

// recordOpen stores the open record of a long request before it is forwarded, so that a proxy
// that stops mid-stream leaves an open record rather than none. It answers the client itself
// (and returns errRefused) when the record cannot be stored and unrecorded requests are refused.
func (p *Proxy) recordOpen(r *http.Request, st *requestState, start time.Time) error {
	rec := p.newRecord(r, st, start)
	rec.ID = trail.OpenID(rec.ID)
	rec.Phase = trail.PhaseOpen
	rec.Code = 0
	if err := p.opts.Recorder.PublishSync(r.Context(), rec); err != nil {
		p.metrics.unrecorded.Inc()
		if p.opts.Unrecorded == RefuseUnrecorded {
			st.errReason = "trail unavailable"
			p.log.Error("refusing a stream: the trail cannot record its start", "auditID", st.auditID, "err", err)
			p.refuse(st, http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, "Gatehouse cannot record the start of this stream right now (the trail is unavailable), so it does not forward it. Retry shortly.")
			return errRefused
		}
		p.log.Error("forwarding a stream whose start the trail did not record", "auditID", st.auditID, "err", err)
	}
	st.opened = true
	return nil
}

// recordResentOpen stores the open record of the attempt a long request held for approval was
// re-sent as: it carries that attempt's Audit-ID (and the held attempt's as HeldAuditID), so that
// the stream's audit events join it while it runs. Its ID is the OpenID of that Audit-ID; the
// request's own record, when it ends, closes both open records.
func (p *Proxy) recordResentOpen(st *requestState) {
	if !st.opened {
		return
	}
	rec := p.newRecord(st.in, st, st.start)
	rec.ID = trail.OpenID(st.auditID)
	rec.Phase = trail.PhaseOpen
	rec.Code = 0
	if err := p.opts.Recorder.PublishSync(st.in.Context(), rec); err != nil {
		p.metrics.unrecorded.Inc()
		p.log.Error("the open record of a re-sent stream was not stored", "auditID", st.auditID, "err", err)
	}
}

// recordWrite stores the record of a write before its answer goes to the client: the API server
// carried it out, and a client must never see it succeed without the gateway's record. A NATS
// blip is waited out, with backoff, for up to Options.WriteRecordTimeout; after that the client
// gets an error (the write took effect: it is told to check before it retries) under
// RefuseUnrecorded, and the answer under AllowUnrecorded.
func (p *Proxy) recordWrite(resp *http.Response, st *requestState) error {
	rec := p.newRecord(st.in, st, st.start)
	rec.Latency = time.Since(st.start)
	rec.Duration = rec.Latency
	rec.BytesOut = max(resp.ContentLength, 0)
	rec.Code = resp.StatusCode
	ctx, cancel := context.WithTimeout(context.WithoutCancel(st.in.Context()), p.opts.WriteRecordTimeout)
	defer cancel()
	var last error
	err := wait.ExponentialBackoffWithContext(ctx, wait.Backoff{Duration: 20 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 1 << 30, Cap: time.Second},
		func(ctx context.Context) (bool, error) {
			if last = p.opts.Recorder.PublishSync(ctx, rec); last != nil {
				return false, nil
			}
			return true, nil
		})
	if err == nil {
		st.recorded = true
		p.metrics.observe(rec)
		return nil
	}
	p.metrics.unrecorded.Inc()
	if last == nil {
		last = err
	}
	if p.opts.Unrecorded == AllowUnrecorded {
		p.log.Error("passing on the answer to a write the trail did not record", "auditID", st.auditID, "err", last)
		return nil
	}
	return fmt.Errorf("%w: %w", errUnrecorded, last)
}
