package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatehouse-dev/gatehouse/authn"
	"github.com/gatehouse-dev/gatehouse/identity"
)

// clientImpersonation handles a request carrying Impersonate-* headers: refused unless an
// ImpersonationAuthorizer allows exactly what it asks, in which case the request acts as the
// target. It answers the client itself when it refuses.
func (p *Proxy) clientImpersonation(r *http.Request, st *requestState, header string) error {
	refuse := func(reason, msg string) error {
		st.errReason = reason
		p.metrics.authFailures.WithLabelValues(authn.ReasonImpersonate).Inc()
		p.log.Warn("refused client impersonation", "auditID", st.auditID, "user", st.id.User, "reason", reason)
		p.refuse(st, http.StatusForbidden, metav1.StatusReasonForbidden, msg)
		return errRefused
	}
	if p.opts.Impersonation == nil {
		return refuse("impersonation header "+header, "Gatehouse does not accept Impersonate-* headers (kubectl --as/--as-group): requests run as the identity of your token.")
	}
	if name, ok := onlyCanonical(r.Header); !ok {
		return refuse("impersonation header "+name, "Gatehouse refuses the impersonation header "+name+".")
	}
	as, err := impersonationRequest(r.Header)
	if err != nil {
		return refuse("malformed impersonation", "Gatehouse refuses this impersonation: "+err.Error())
	}
	target := authn.Impersonate(st.id, as)
	if err := p.opts.Authenticator.CheckIdentity(target); err != nil {
		if authn.Reason(err) == authn.ReasonSystem {
			return refuse("impersonation of a system identity", "Gatehouse does not impersonate reserved system: identities.")
		}
		return refuse("impersonation of an invalid identity", "Gatehouse does not impersonate this identity ("+authn.Reason(err)+").")
	}
	if err := p.opts.Impersonation.AuthorizeImpersonation(r.Context(), st.id, as); err != nil {
		if errors.Is(err, authn.ErrImpersonationDenied) {
			return refuse("impersonation denied", err.Error()+".")
		}
		p.log.Error("impersonation could not be authorized", "auditID", st.auditID, "err", err)
		st.errReason = "impersonation not authorized"
		p.refuse(st, http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, "Gatehouse could not check this impersonation right now; retry shortly.")
		return errRefused
	}
	p.log.Info("client impersonation", "auditID", st.auditID, "user", st.id.User, "as", target.User)
	st.id = target
	return nil
}

// impersonationRequest reads a client's Impersonate-* headers. Only the canonical spellings
// are read; any other spelling has already been refused. An extra's key is read as
// kube-apiserver will read it once the proxy forwards it: lower case, also where the client
// escaped a letter (%47atehouse.dev%2Fapproval-id is gatehouse.dev/approval-id), since the
// proxy escapes no letters and kube-apiserver lowercases the header's name.
func impersonationRequest(h http.Header) (authn.ImpersonationRequest, error) {
	as := authn.ImpersonationRequest{User: h.Get("Impersonate-User"), Groups: h.Values("Impersonate-Group"), UID: h.Get("Impersonate-Uid")}
	for name, vs := range h {
		if k, ok := strings.CutPrefix(name, "Impersonate-Extra-"); ok {
			key, err := url.PathUnescape(strings.ToLower(k))
			if err != nil {
				return as, fmt.Errorf("malformed impersonation extra %q", name)
			}
			key = strings.ToLower(key)
			if as.Extra == nil {
				as.Extra = map[string][]string{}
			}
			as.Extra[key] = append(as.Extra[key], vs...)
		}
	}
	if as.User == "" {
		return as, errors.New("an Impersonate-User header is required with any other Impersonate-* header")
	}
	for k := range as.Extra {
		if identity.IsReserved(k) {
			return as, fmt.Errorf("the extra %q is Gatehouse's own", k)
		}
	}
	return as, nil
}

// onlyCanonical reports whether every impersonation header is spelled as Go canonicalises the
// names kube-apiserver reads; a client smuggling another spelling is refused outright.
func onlyCanonical(h http.Header) (string, bool) {
	for name := range h {
		if !isImpersonation(name) {
			continue
		}
		switch {
		case name == "Impersonate-User", name == "Impersonate-Group", name == "Impersonate-Uid":
		case strings.HasPrefix(name, "Impersonate-Extra-"):
		default:
			return name, false
		}
	}
	for _, v := range h.Values("Connection") {
		for _, tok := range strings.Split(v, ",") {
			if isImpersonation(strings.TrimSpace(tok)) {
				return "Connection: " + strings.TrimSpace(tok), false
			}
		}
	}
	return "", true
}
