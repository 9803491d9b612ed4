package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/masking"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// PolicyEvaluator evaluates access policies. *policy.Engine implements it.
type PolicyEvaluator interface {
	Evaluate(ctx context.Context, a policy.Attributes) (policy.Decision, error)
}

// ApprovalBroker holds operations for approval. *approvals.Broker implements it.
type ApprovalBroker interface {
	Create(ctx context.Context, s approvals.Spec) (*approvals.Request, error)
	Wait(ctx context.Context, id string) (*approvals.Request, error)
	GetProbe(ctx context.Context, id string) (*approvals.Probe, error)
}

var (
	_ PolicyEvaluator = (*policy.Engine)(nil)
	_ ApprovalBroker  = (*approvals.Broker)(nil)
)

// maxPolicyBody bounds a request body read for policy evaluation: kube-apiserver's own limit.
const maxPolicyBody = 3 << 20

// errRefused is returned by the policy step after it answered the client itself.
var errRefused = errors.New("refused")

// applyPolicy evaluates the policies for a resource request and, for a rule that requires
// approval, holds the request until a decision. It answers the client itself when it refuses,
// and returns errRefused then.
func (p *Proxy) applyPolicy(r *http.Request, st *requestState) error {
	info := st.info
	a := policy.Attributes{
		Verb: info.Verb, Group: info.APIGroup, Version: info.APIVersion, Resource: info.Resource,
		Subresource: info.Subresource, Namespace: info.Namespace, Name: info.Name,
		User:       p.userInfo(st),
		ViaGateway: true,
		DryRun:     r.URL.Query().Has("dryRun"),
	}
	op := a.Op()
	if (op == "CREATE" || op == "UPDATE") && info.Verb != "patch" {
		a.Object = objectJSON(r.Header.Get("Content-Type"), st.body) // read by refusePlaceholders
		if a.Name == "" && a.Object != nil {
			// A create names its object in the body, as admission sees it.
			var meta struct {
				Metadata struct{ Name string } `json:"metadata"`
			}
			if json.Unmarshal(a.Object, &meta) == nil {
				a.Name = meta.Metadata.Name
			}
		}
	}
	d, err := p.opts.Policy.Evaluate(r.Context(), a)
	if err != nil {
		p.log.Error("policy evaluation failed", "auditID", st.auditID, "err", err)
		if policy.Privileged(a) {
			st.errReason = "policy engine unavailable"
			p.refuse(st, http.StatusServiceUnavailable, "ServiceUnavailable", "Gatehouse cannot evaluate its access policies right now, so it refuses this privileged operation. Retry shortly.")
			return errRefused
		}
		return nil
	}
	p.log.Debug("policy decision", "auditID", st.auditID, "request", a.String(), "action", d.Action, "policy", d.Policy, "rule", d.Rule, "object", a.Object != nil)
	if d.Rule != "" {
		st.decision = &trail.Policy{Policy: d.Policy, Rule: d.Rule, Action: string(d.Action), Message: d.Message}
	}
	switch d.Action {
	case policy.ActionDeny:
		st.errReason = "denied by policy " + d.Policy + "/" + d.Rule
		p.refuse(st, http.StatusForbidden, "Forbidden", d.Message)
		return errRefused
	case policy.ActionRequireApproval:
		return p.holdForApproval(r, st, a, d)
	}
	return nil
}

// holdForApproval creates an approval request and holds the client's call until approvers
// decide. On approval the call is forwarded with the grant, which the validating webhook checks
// against the object it sees and uses up.
func (p *Proxy) holdForApproval(r *http.Request, st *requestState, a policy.Attributes, d policy.Decision) error {
	if p.opts.Approvals == nil || p.opts.Fingerprints == nil || d.Approval == nil {
		st.errReason = "approval required, no approval broker"
		p.refuse(st, http.StatusForbidden, "Forbidden", d.Message+" Approvals are not configured on this Gatehouse, so the operation cannot run.")
		return errRefused
	}
	if a.DryRun {
		st.errReason = "dry run of an operation that requires approval"
		p.refuse(st, http.StatusForbidden, "Forbidden", d.Message+" A dry run does not create an approval request; send the request itself.")
		return errRefused
	}
	op := trail.Operation{Verb: a.Op(), APIGroup: a.Group, APIVersion: a.Version, Resource: a.Resource,
		Subresource: a.Subresource, Namespace: a.Namespace, Name: a.Name}
	var probe *approvals.Probe
	if op.Verb == "CONNECT" {
		fp, err := p.opts.Fingerprints.Fingerprint(st.id.User, op, nil)
		if err != nil {
			return p.approvalFailed(st, err)
		}
		probe = &approvals.Probe{Fingerprint: fp}
	} else {
		var err error
		if probe, err = p.probe(r, st); err != nil {
			if errors.Is(err, errRefused) {
				return err
			}
			return p.approvalFailed(st, err)
		}
	}
	req, err := p.opts.Approvals.Create(r.Context(), approvals.Spec{
		Requester:      st.id.Identity,
		SessionID:      st.session,
		Operation:      op,
		Object:         probe.Object,
		Fingerprint:    probe.Fingerprint,
		Policy:         *st.decision,
		ApproverGroups: d.Approval.ApproverGroups,
		Required:       d.Approval.Approvals,
		GrantTTL:       d.Approval.GrantTTL,
		Path:           approvals.PathProxy,
		Timeout:        p.opts.ApprovalTimeout,
	})
	if err != nil {
		return p.approvalFailed(st, err)
	}
	st.approvalID = req.ID
	p.log.Info("holding request for approval", "auditID", st.auditID, "approval", req.ID, "user", st.id.User)
	ctx, cancel := context.WithTimeout(r.Context(), p.opts.ApprovalTimeout+time.Second)
	defer cancel()
	p.metrics.held.Inc()
	decided, err := p.opts.Approvals.Wait(ctx, req.ID)
	p.metrics.held.Dec()
	if err != nil && decided == nil {
		return p.approvalFailed(st, err)
	}
	switch decided.State {
	case approvals.StateApproved:
		return nil
	case approvals.StatePending:
		st.errReason = "client went away while held for approval"
		return errRefused
	}
	st.errReason = "approval " + strings.ToLower(string(decided.State))
	p.refuse(st, http.StatusForbidden, "Forbidden", approvals.DenialMessage(decided))
	return errRefused
}

// probe sends the operation as a dry run with the probe extra: admission computes the
// fingerprint of the object as it sees it (after defaulting and mutation), and the broker keeps
// it. A dry run that fails (RBAC, validation) is answered to the client at once: nobody should
// approve what would fail anyway.
func (p *Proxy) probe(r *http.Request, st *requestState) (*approvals.Probe, error) {
	probeID := trail.NewID()
	u := *p.upstream
	u.Path = strings.TrimSuffix(u.Path, "/") + r.URL.Path
	q := r.URL.Query()
	q.Set("dryRun", "All")
	u.RawQuery = q.Encode()
	var body io.Reader
	if st.body != nil {
		body = bytes.NewReader(st.body)
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), body)
	if err != nil {
		return nil, err
	}
	for _, h := range []string{"Content-Type", "User-Agent"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	req.Header.Set("Accept", "application/json")
	p.setIdentityHeaders(req.Header, st)
	req.Header.Set("Audit-Id", probeID)
	req.Header.Set(extraHeader(identity.ExtraApprovalProbe), probeID)
	resp, err := p.transport.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("dry run: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		st.errReason = "dry run before approval failed"
		for k, vs := range resp.Header {
			if k == "Content-Type" || k == "Warning" {
				st.w.Header()[k] = vs
			}
		}
		st.w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(st.w, io.LimitReader(resp.Body, 1<<20))
		return nil, errRefused
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	probe, err := p.opts.Approvals.GetProbe(r.Context(), probeID)
	if errors.Is(err, approvals.ErrNotFound) {
		return nil, errors.New("the Gatehouse validating webhook did not fingerprint the operation; it must be installed for approvals")
	}
	return probe, err
}

func (p *Proxy) approvalFailed(st *requestState, err error) error {
	p.log.Error("approval flow failed", "auditID", st.auditID, "err", err)
	st.errReason = "approval unavailable"
	p.refuse(st, http.StatusServiceUnavailable, "ServiceUnavailable", "Gatehouse cannot hold this operation for approval right now ("+err.Error()+"), so it does not run. Retry shortly.")
	return errRefused
}

// userInfo is the identity as admission will see it.
func (p *Proxy) userInfo(st *requestState) authenticationv1.UserInfo {
	extra := map[string]authenticationv1.ExtraValue{}
	for k, v := range st.id.Extra {
		extra[k] = v
	}
	for k, v := range p.gatehouseExtras(st) {
		extra[k] = authenticationv1.ExtraValue{v}
	}
	return authenticationv1.UserInfo{
		Username: st.id.User,
		UID:      st.id.UID,
		Groups:   append(append([]string{}, st.id.Groups...), "system:authenticated"),
		Extra:    extra,
	}
}

// refusePlaceholders refuses a write whose body carries a masked placeholder.
func (p *Proxy) refusePlaceholders(r *http.Request, st *requestState) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxPolicyBody+1))
	_ = r.Body.Close()
	if err != nil {
		st.errReason = "reading request body"
		p.refuse(st, http.StatusBadRequest, "BadRequest", "Gatehouse could not read the request body.")
		return errRefused
	}
	if len(body) > maxPolicyBody {
		st.errReason = "request body too large"
		p.refuse(st, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "The request body is larger than 3 MiB.")
		return errRefused
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	st.body = body
	if masking.ContainsPlaceholder(body) {
		st.errReason = "masked placeholder in request body"
		p.refuse(st, http.StatusUnprocessableEntity, "Invalid", "The request contains Gatehouse's masked placeholders (gatehouse:masked:...) where values belong: it was built from an object read through Gatehouse. Write the real values, or leave those fields out.")
		return errRefused
	}
	return nil
}

func isWrite(method string) bool {
	return method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch
}

// objectJSON returns a request body as JSON for policy evaluation: as it is when it is JSON,
// decoded when it is a built-in type in protobuf (kubectl and client-go send those), nil when
// it is neither. The body forwarded is always the client's own.
func objectJSON(contentType string, body []byte) []byte {
	if len(body) == 0 {
		return nil
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	switch mt {
	case "", "application/json":
		return body
	case runtime.ContentTypeProtobuf:
		obj, gvk, err := clientgoscheme.Codecs.UniversalDeserializer().Decode(body, nil, nil)
		if err != nil {
			return nil
		}
		obj.GetObjectKind().SetGroupVersionKind(*gvk)
		out, err := json.Marshal(obj)
		if err != nil {
			return nil
		}
		return out
	}
	return nil
}
