package authn

import (
	"context"
	"errors"
	"fmt"
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

// Impersonate returns the identity a request acts as after an authorized client impersonation:
// the target, keeping the verified user in the original-user extra and the token's issuer and
// subject.
func Impersonate(who *Identity, as ImpersonationRequest) *Identity {
	out := &Identity{Expiry: who.Expiry}
	out.User, out.Groups, out.UID = as.User, as.Groups, as.UID
	out.Issuer, out.Subject = who.Issuer, who.Subject
	out.Extra = map[string][]string{identity.ExtraOriginalUser: {who.User}}
	for k, v := range as.Extra {
		out.Extra[k] = v
	}
	return out
}
