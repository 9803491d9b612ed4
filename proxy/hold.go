package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/serving"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// ApprovalReader reads approval requests and waits for their decisions. *approvals.Broker
// implements it.
type ApprovalReader interface {
	Get(ctx context.Context, id string) (*approvals.Request, error)
	Wait(ctx context.Context, id string) (*approvals.Request, error)
}

var _ ApprovalReader = (*approvals.Broker)(nil)

// holdTransport is the ReverseProxy's transport to kube-apiserver. It sends a call and, when
// admission answers that it holds the call for approval (a 403 Status naming an approval request
// in its details, in JSON or protobuf), holds the client: it waits on the broker for a decision,
// up to the client's hold limit, and once the request is approved re-sends the call exactly once,
// with the approval (extra gatehouse.dev/approval-id) and an Audit-ID of its own. Protocol
// upgrades (exec, attach, port-forward) are held and re-sent the same way: admission decides them
// before the upgrade. A client that asked not to be held (hold=refuse), or whose request is
// denied, expires or is still pending at the limit, gets a 403 saying so, with the approval ID in
// the details.
type holdTransport struct {
	next http.RoundTripper
	p    *Proxy
}

// maxStatusBytes bounds the body of a 403 the transport reads to see whether it is a hold.
const maxStatusBytes = 64 << 10

func (t *holdTransport) RoundTrip(out *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(out)
	st := stateOf(out)
	if err != nil || st == nil {
		return resp, err
	}
	id, ok := heldFor(resp)
	if !ok {
		return resp, nil
	}
	return t.hold(out, st, resp, id)
}

// hold decides what a call admission held for approval request id turns into.
func (t *holdTransport) hold(out *http.Request, st *requestState, denial *http.Response, id string) (*http.Response, error) {
	p := t.p
	st.heldAuditID, st.approvalID = st.auditID, id
	if p.opts.Approvals == nil {
		st.errReason = "held for approval"
		return denial, nil
	}
	ctx := out.Context()
	r, err := p.opts.Approvals.Get(ctx, id)
	if err != nil {
		return t.failed(out, st, denial, err)
	}
	if r.Requester.User != st.id.User {
		// Not this client's request: nothing to wait for. Admission's answer stands.
		p.log.Warn("admission named another requester's approval request", "auditID", st.auditID, "approval", id)
		st.errReason = "held for approval"
		return denial, nil
	}
	if op := st.attrs.TrailOperation(); r.Operation.Resource != op.Resource || r.Operation.Subresource != op.Subresource {
		// A 403 that names an approval request of another operation is not admission holding
		// this call: a pod or service reached through the proxy subresources can answer
		// anything. Nothing is waited for or re-sent with that approval, and the record does
		// not name it.
		p.log.Warn("a 403 named an approval request of another operation; not a hold", "auditID", st.auditID, "approval", id,
			"resource", op.Resource, "subresource", op.Subresource, "approvalResource", r.Operation.Resource, "approvalSubresource", r.Operation.Subresource)
		st.heldAuditID, st.approvalID = "", ""
		return denial, nil
	}
	closeBody(denial)
	if st.opts.refuse {
		st.errReason = "held for approval; refused at once (hold=refuse)"
		return heldResponse(out, id, "Gatehouse did not hold this request, as asked (hold=refuse). "+approvals.PendingMessage(r, p.opts.ConsoleURL)+
			" To be held until approvers decide instead, send it with hold=wait (the "+HoldHeader+" header, or the server URL prefix "+ClientPathPrefix+"hold=wait/)."), nil
	}

	limit := st.opts.holdLimit(p.opts.MaxHold)
	p.log.Info("holding request for approval", "auditID", st.auditID, "approval", id, "user", st.id.User, "limit", limit)
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	p.metrics.held.Inc()
	decided, err := p.opts.Approvals.Wait(wctx, id)
	p.metrics.held.Dec()
	switch {
	case ctx.Err() != nil:
		st.errReason = "client went away while held for approval"
		return nil, ctx.Err()
	case err != nil && wctx.Err() == nil:
		return t.failed(out, st, nil, err)
	case err != nil:
		// The hold limit passed while the broker was still setting the wait up or reading the
		// request again (NATS is slow, the limit short): Wait then returns an error that need
		// not be the context's, and no request. Nobody decided it in time: the answer is the
		// request as last read.
		if decided == nil {
			decided = r
		}
	}
	switch decided.State {
	case approvals.StateApproved:
		return t.resend(out, st, id)
	case approvals.StatePending:
		st.errReason = "still pending at the hold limit"
		return heldResponse(out, id, fmt.Sprintf("Gatehouse held this request for %s and nobody decided it. ", limit)+approvals.PendingMessage(decided, p.opts.ConsoleURL)), nil
	}
	st.errReason = "approval " + string(decided.State)
	return heldResponse(out, id, approvals.DenialMessage(decided)), nil
}

// resend sends a held call again, once, with the approval it waited for.
func (t *holdTransport) resend(out *http.Request, st *requestState, id string) (*http.Response, error) {
	retry := out.Clone(out.Context())
	// The proxy's own credential as it is now: a token file may have changed while the call was
	// held. The transport adds it again (bearerAuth, or client-go's wrapper).
	retry.Header.Del("Authorization")
	st.auditID = trail.NewID()
	st.w.Header().Set("Audit-Id", st.auditID)
	setAttempt(retry.Header, st.auditID, id)
	if len(st.body) > 0 {
		body := st.body
		retry.Body = io.NopCloser(bytes.NewReader(body))
		retry.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		retry.ContentLength = int64(len(body))
	}
	t.p.log.Info("re-sending an approved request", "auditID", st.auditID, "heldAuditID", st.heldAuditID, "approval", id)
	t.p.recordResentOpen(st)
	return t.next.RoundTrip(retry)
}

// failed answers a held call whose approval request cannot be read: the broker's error goes to
// the log, the client gets a summary.
func (t *holdTransport) failed(out *http.Request, st *requestState, denial *http.Response, err error) (*http.Response, error) {
	closeBody(denial)
	t.p.log.Error("cannot hold the request for approval", "auditID", st.auditID, "approval", st.approvalID, "err", err)
	st.errReason = "approval broker unavailable"
	return statusResponse(out, serving.FailureStatus(http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable,
		"Admission holds this request for approval ("+st.approvalID+"), and Gatehouse cannot reach its approval broker to wait for the decision. Retry in a minute; if this persists, tell a Gatehouse administrator.",
		approvals.StatusDetails(st.approvalID))), nil
}

// heldResponse is the 403 a client gets for a call held for approval request id.
func heldResponse(out *http.Request, id, message string) *http.Response {
	return statusResponse(out, serving.FailureStatus(http.StatusForbidden, metav1.StatusReasonForbidden, message, approvals.StatusDetails(id)))
}

func statusResponse(out *http.Request, st *metav1.Status) *http.Response {
	body := serving.EncodeStatus(st)
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", st.Code, http.StatusText(int(st.Code))),
		StatusCode:    int(st.Code),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       out,
	}
}

func closeBody(resp *http.Response) {
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
}

// statusCodec decodes a protobuf Status, as kube-apiserver sends it to clients that accept
// protobuf.
var statusCodec = func() runtime.Decoder {
	s := runtime.NewScheme()
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	return protobuf.NewSerializer(s, s)
}()

// heldFor reports whether resp is admission holding the call for approval: a 403 whose Status
// names an approval request in its details. It reads at most maxStatusBytes of a 403's body and
// leaves the body as it was for whoever reads resp next.
func heldFor(resp *http.Response) (string, bool) {
	if resp.StatusCode != http.StatusForbidden || resp.Body == nil || resp.Header.Get("Content-Encoding") != "" {
		return "", false
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "application/json" && mt != runtime.ContentTypeProtobuf {
		return "", false
	}
	orig := resp.Body
	body, err := io.ReadAll(io.LimitReader(orig, maxStatusBytes))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), orig), orig}
	if err != nil || len(body) == maxStatusBytes {
		return "", false
	}
	var st metav1.Status
	if mt == runtime.ContentTypeProtobuf {
		if _, _, err := statusCodec.Decode(body, nil, &st); err != nil {
			return "", false
		}
	} else if json.Unmarshal(body, &st) != nil || st.Kind != "Status" {
		return "", false
	}
	return approvals.IDFromStatus(&st)
}
