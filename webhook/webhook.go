package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// Paths the webhooks are served at; manifests/webhook points kube-apiserver at them.
const (
	PathValidate = "/validate"
	PathMutate   = "/mutate"
)

// Components named in trail records.
const (
	ComponentValidating = "validating-webhook"
	ComponentMutating   = "mutating-webhook"
)

// ErrInvalidOptions is wrapped by Options.Validate's errors.
var ErrInvalidOptions = errors.New("webhook: invalid options")

// Approver is the hook the approval broker implements.
//
// A nil Approver means the approval flow is not configured: requireApproval decisions are denied
// with a message saying the operation requires approval and that the flow is not configured.
type Approver interface {
	// Admit decides an operation a rule holds for approval, at admission time: allowed when a
	// valid grant exists for exactly this operation (and then consumes it), else denied with a
	// message naming the approval request and how to approve it. The validator never calls it
	// for a dry run, which it allows with a warning: the validating webhook is registered with
	// sideEffects NoneOnDryRun.
	Admit(ctx context.Context, req admission.Request, a policy.Attributes, d policy.Decision) admission.Response
}

// Publisher takes trail records; *trail.Publisher is one. When it also has a Ready() error
// method (as *trail.Publisher does), the validator asks it before it admits a privileged
// operation, so nothing privileged happens that the trail cannot take.
type Publisher interface {
	Publish(ctx context.Context, r trail.Record) error
}

var _ Publisher = (*trail.Publisher)(nil)

// readier is the optional half of Publisher.
type readier interface{ Ready() error }

// Options configures the validating webhook.
type Options struct {
	// Engine decides requests. Required.
	Engine *policy.Engine
	// Approver admits operations held for approval. Default nil: they are denied (see Approver).
	Approver Approver
	// Publisher receives a trail.Decision for every request the validator decides. Required:
	// Gatehouse does not decide unrecorded.
	Publisher Publisher
	// Privileged tells which requests fail closed: when the policies cannot be evaluated or the
	// decision cannot be recorded, a privileged request is denied and any other allowed with a
	// warning. It must agree with the failurePolicy split of the webhook configurations.
	// Default policy.Privileged.
	Privileged func(policy.Attributes) bool
	// Logger reports decisions that failed closed, unrecorded decisions and malformed reviews.
	// It never receives objects or tokens. Default: discard.
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Privileged == nil {
		o.Privileged = policy.Privileged
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports missing required options.
func (o *Options) Validate() error {
	if o.Engine == nil {
		return fmt.Errorf("%w: Engine is required", ErrInvalidOptions)
	}
	if o.Publisher == nil {
		return fmt.Errorf("%w: Publisher is required: decisions are recorded in the trail", ErrInvalidOptions)
	}
	return nil
}

// Register serves the validating webhook at PathValidate and the mutating webhook at PathMutate
// on srv, each behind NewHandler.
func Register(srv ctrlwebhook.Server, opts Options) error {
	v, err := NewValidator(opts)
	if err != nil {
		return err
	}
	srv.Register(PathValidate, NewHandler(v, opts.Logger))
	srv.Register(PathMutate, NewHandler(NewMutator(opts.Logger), opts.Logger))
	return nil
}

// Attributes describes an admission request for the policy engine. The verb is derived from
// the operation: create, update (patch from PatchOptions), delete, and connect for CONNECT,
// which carries no object.
func Attributes(req admission.Request) policy.Attributes {
	return attributes(req, identity.FromExtra(req.UserInfo.Extra))
}

// attributes is Attributes with the request's Gatehouse extras already read.
func attributes(req admission.Request, ex identity.Extras) policy.Attributes {
	a := policy.Attributes{
		Operation:   string(req.Operation),
		Group:       req.Resource.Group,
		Version:     req.Resource.Version,
		Resource:    req.Resource.Resource,
		Subresource: req.SubResource,
		Namespace:   req.Namespace,
		Name:        req.Name,
		User:        req.UserInfo,
		ViaGateway:  ex.ViaGateway(),
		DryRun:      req.DryRun != nil && *req.DryRun,
	}
	switch req.Operation {
	case admissionv1.Create:
		a.Verb = "create"
	case admissionv1.Update:
		a.Verb = "update"
		var opts metav1.TypeMeta
		if len(req.Options.Raw) > 0 && json.Unmarshal(req.Options.Raw, &opts) == nil && opts.Kind == "PatchOptions" {
			a.Verb = "patch"
		}
	case admissionv1.Delete:
		a.Verb = "delete"
	case admissionv1.Connect:
		a.Verb = trail.VerbConnect
	}
	if req.Operation != admissionv1.Connect {
		if len(req.Object.Raw) > 0 {
			a.Object = req.Object.Raw
		}
		if len(req.OldObject.Raw) > 0 {
			a.OldObject = req.OldObject.Raw
		}
	}
	return a
}

// NewHandler returns the HTTP endpoint for an admission handler: controller-runtime's
// admission.Webhook, which decodes admission.k8s.io/v1 (and v1beta1) AdmissionReviews, answers a
// review it cannot decode (no body, over 7 MiB, a content type other than application/json,
// malformed JSON) with an error response and a log line, recovers panics and completes the
// response. Requests without a UID, a resource or a known operation are refused with an error
// response too, never decided.
func NewHandler(h admission.Handler, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lr := logr.FromSlogHandler(log.Handler())
	return &admission.Webhook{
		Handler:        wellFormed{h: h, log: log},
		LogConstructor: func(logr.Logger, *admission.Request) logr.Logger { return lr },
	}
}
