package approvals

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatehouse-dev/gatehouse/serving"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// APIPrefix is where the approvals API is served: by `gatehouse console`, next to the web
// console, with the same token verification as the proxy. The proxy answers it with the
// console's address.
const APIPrefix = "/gatehouse/v1/approvals"

// API serves the approvals API:
//
//	GET  /gatehouse/v1/approvals[?state=Pending]    list (newest first)
//	GET  /gatehouse/v1/approvals?watch=true         stream of changes, one JSON event per line
//	GET  /gatehouse/v1/approvals/{id}               one request
//	POST /gatehouse/v1/approvals/{id}/approve       {"reason": "...", "scope": {...}}
//	POST /gatehouse/v1/approvals/{id}/deny          {"reason": "..."}
//
// Every call needs an identity from Authenticate. A caller sees only the requests it may see
// (Request.VisibleTo): its own, and those its groups may approve; any other is not found, and a
// list or watch leaves it out. Errors are Kubernetes Status objects (code, reason, message).
type API struct {
	Broker *Broker
	// Authenticate returns the caller's verified identity. Required.
	Authenticate func(*http.Request) (trail.Identity, error)
	Logger       *slog.Logger
}

// ListResponse is the body of a list call.
type ListResponse struct {
	Items []*Request `json:"items"`
}

// WatchEvent is one line of a watch stream.
type WatchEvent struct {
	// Type is ADDED for requests that existed when the watch started or were created, MODIFIED
	// for changes.
	Type   string   `json:"type"`
	Object *Request `json:"object"`
}

// DecisionBody is the body of approve and deny calls. Scope, on an approval of a request whose
// rule offers one, grants that scope instead of the one operation (ScopeChoice; empty fields
// take the whole offer).
type DecisionBody struct {
	Reason string       `json:"reason,omitempty"`
	Scope  *ScopeChoice `json:"scope,omitempty"`
}

func (a *API) log() *slog.Logger {
	if a.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Logger
}

// ServeHTTP routes an approvals API call.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	who, err := a.Authenticate(r)
	if err != nil {
		writeError(w, http.StatusUnauthorized, metav1.StatusReasonUnauthorized, "the approvals API needs a valid bearer token")
		return
	}
	rest := strings.Trim(strings.TrimPrefix(r.URL.Path, APIPrefix), "/")
	parts := strings.Split(rest, "/")
	switch {
	case rest == "" && r.Method == http.MethodGet && r.URL.Query().Get("watch") == "true":
		a.watch(w, r, who)
	case rest == "" && r.Method == http.MethodGet:
		var states []State
		if s := r.URL.Query().Get("state"); s != "" {
			states = append(states, State(s))
		}
		items, err := a.Broker.List(r.Context(), states...)
		if err != nil {
			a.fail(w, err)
			return
		}
		visible := []*Request{}
		for _, it := range items {
			if it.VisibleTo(who) {
				visible = append(visible, it)
			}
		}
		writeJSON(w, http.StatusOK, ListResponse{Items: visible})
	case len(parts) == 1 && r.Method == http.MethodGet:
		req, err := a.Broker.Get(r.Context(), parts[0])
		if err == nil && !req.VisibleTo(who) {
			err = fmt.Errorf("%w: %s", ErrNotFound, parts[0])
		}
		if err != nil {
			a.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, req)
	case len(parts) == 2 && r.Method == http.MethodPost && (parts[1] == "approve" || parts[1] == "deny"):
		var body DecisionBody
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
			writeError(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, "the body must be JSON: {\"reason\": \"...\"}")
			return
		}
		verdict := Approve
		if parts[1] == "deny" {
			verdict = Deny
		}
		req, err := a.Broker.DecideScoped(r.Context(), parts[0], who, verdict, body.Reason, body.Scope)
		if err != nil {
			a.fail(w, err)
			return
		}
		a.log().Info("approval decision", "approval", req.ID, "approver", who.User, "verdict", verdict, "state", req.State)
		writeJSON(w, http.StatusOK, req)
	default:
		writeError(w, http.StatusNotFound, metav1.StatusReasonNotFound, "no such approvals API call")
	}
}

func (a *API) watch(w http.ResponseWriter, r *http.Request, who trail.Identity) {
	watcher, err := a.Broker.Watch(r.Context())
	if err != nil {
		a.fail(w, err)
		return
	}
	defer func() { _ = watcher.Stop() }()
	w.Header().Set("Content-Type", "application/json;stream=watch")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	initial := true
	for {
		select {
		case <-r.Context().Done():
			return
		case c, ok := <-watcher.Changes():
			if !ok {
				return
			}
			if c == nil { // the initial values are done
				initial = false
				continue
			}
			if c.Err != nil || !c.Request.VisibleTo(who) {
				continue
			}
			req := c.Request
			req.expire(a.Broker.clock.Now())
			// A pending request without decisions has just been created.
			typ := "MODIFIED"
			if initial || req.State == StatePending && len(req.Decisions) == 0 {
				typ = "ADDED"
			}
			if err := enc.Encode(WatchEvent{Type: typ, Object: req}); err != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
	}
}

func (a *API) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, metav1.StatusReasonNotFound, err.Error())
	case errors.Is(err, ErrNotAllowed):
		writeError(w, http.StatusForbidden, metav1.StatusReasonForbidden, err.Error())
	case errors.Is(err, ErrFinal):
		writeError(w, http.StatusConflict, metav1.StatusReasonConflict, err.Error())
	case errors.Is(err, ErrInvalidInput):
		writeError(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
	case errors.Is(err, ErrTampered):
		a.log().Error("approval request refused: it failed its integrity check", "err", err)
		writeError(w, http.StatusInternalServerError, metav1.StatusReasonInternalError,
			"the approval request failed its integrity check (it was changed outside Gatehouse), so it cannot be shown or decided; tell a Gatehouse administrator")
	case errors.Is(err, context.Canceled):
	default:
		a.log().Error("approvals API call failed", "err", err)
		writeError(w, http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, "the approval broker is unavailable; retry shortly")
	}
}

// APIError is an error answer of the approvals API: the fields of its Status.
type APIError struct {
	Code    int    `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

func (e *APIError) Error() string { return e.Message }

func writeError(w http.ResponseWriter, code int, reason metav1.StatusReason, message string) {
	serving.WriteStatus(w, serving.FailureStatus(code, reason, message, nil))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
