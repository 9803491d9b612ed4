package authn

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/gatehouse-dev/gatehouse/identity"
)

// ImpersonationRequest is what a client asked to act as with its own Impersonate-* headers
// (kubectl --as, --as-group, --as-uid).
type ImpersonationRequest struct {
	User   string
	Groups []string
	UID    string
	Extra  map[string][]string
}

// ImpersonationAuthorizer decides whether a verified identity may act as another, as
// kube-apiserver's impersonation filter decides it for its own clients.
type ImpersonationAuthorizer interface {
	AuthorizeImpersonation(ctx context.Context, who *Identity, as ImpersonationRequest) error
}

// ErrImpersonationDenied is returned when the verified identity may not impersonate the target.
var ErrImpersonationDenied = errors.New("impersonation not allowed")

// SubjectAccessReviewer authorizes impersonation with SubjectAccessReviews of the verified
// identity: verb impersonate on users, groups, uids, serviceaccounts and userextras/<key>, exactly
// the checks kube-apiserver makes for a client that impersonates itself. The proxy's own account
// needs to create subjectaccessreviews.
type SubjectAccessReviewer struct {
	Client kubernetes.Interface
}

var _ ImpersonationAuthorizer = (*SubjectAccessReviewer)(nil)

// AuthorizeImpersonation implements ImpersonationAuthorizer.
func (s *SubjectAccessReviewer) AuthorizeImpersonation(ctx context.Context, who *Identity, as ImpersonationRequest) error {
	type check struct{ group, resource, subresource, namespace, name string }
	var checks []check
	if ns, name, ok := strings.Cut(strings.TrimPrefix(as.User, "system:serviceaccount:"), ":"); ok && strings.HasPrefix(as.User, "system:serviceaccount:") {
		checks = append(checks, check{"", "serviceaccounts", "", ns, name})
	} else {
		checks = append(checks, check{"", "users", "", "", as.User})
	}
	for _, g := range as.Groups {
		checks = append(checks, check{"", "groups", "", "", g})
	}
	if as.UID != "" {
		checks = append(checks, check{"authentication.k8s.io", "uids", "", "", as.UID})
	}
	for k, vs := range as.Extra {
		for _, v := range vs {
			checks = append(checks, check{"authentication.k8s.io", "userextras", k, "", v})
		}
	}
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range who.Extra {
		extra[k] = v
	}
	for _, c := range checks {
		sar, err := s.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{
				User: who.User, UID: who.UID, Groups: append(append([]string{}, who.Groups...), "system:authenticated"), Extra: extra,
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Verb: "impersonate", Group: c.group, Resource: c.resource, Subresource: c.subresource,
					Namespace: c.namespace, Name: c.name,
				},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("authn: subject access review: %w", err)
		}
		if !sar.Status.Allowed {
			what := c.resource + " " + c.name
			if c.subresource != "" {
				what = c.resource + "/" + c.subresource + " " + c.name
			}
			return fmt.Errorf("%w: %s may not impersonate %s", ErrImpersonationDenied, who.User, what)
		}
	}
	return nil
}

// impersonationRequest reads a client's Impersonate-* headers. Only the canonical spellings
// are read; any other spelling has already been refused.
func impersonationRequest(h http.Header) (ImpersonationRequest, error) {
	as := ImpersonationRequest{User: h.Get("Impersonate-User"), Groups: h.Values("Impersonate-Group"), UID: h.Get("Impersonate-Uid")}
	for name, vs := range h {
		if k, ok := strings.CutPrefix(name, "Impersonate-Extra-"); ok {
			key, err := url.PathUnescape(strings.ToLower(k))
			if err != nil {
				return as, fmt.Errorf("malformed impersonation extra %q", name)
			}
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
		if strings.HasPrefix(k, "gatehouse.dev/") {
			return as, fmt.Errorf("the extra %q is Gatehouse's own", k)
		}
	}
	return as, nil
}

// impersonate returns the identity a request acts as after an authorized client impersonation:
// the target, keeping the verified user in the original-user extra and the token's issuer and
// subject.
func impersonate(who *Identity, as ImpersonationRequest) *Identity {
	out := &Identity{Expiry: who.Expiry}
	out.User, out.Groups, out.UID = as.User, as.Groups, as.UID
	out.Issuer, out.Subject = who.Issuer, who.Subject
	out.Extra = map[string][]string{identity.ExtraOriginalUser: {who.User}}
	for k, v := range as.Extra {
		out.Extra[k] = v
	}
	return out
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
