package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"k8s.io/utils/clock"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/authn"
	"github.com/gatehouse-dev/gatehouse/masking"
)

// ErrInvalidOption is wrapped by every configuration error of New.
var ErrInvalidOption = errors.New("console: invalid option")

// TokenAuthenticator verifies tokens and maps them to identities. *authn.Authenticator
// implements it.
type TokenAuthenticator interface {
	AuthenticateToken(ctx context.Context, token string) (*authn.Identity, error)
}

// TextMasker masks secrets in free text. *masking.Masker implements it.
type TextMasker interface {
	Text(dst, src []byte) ([]byte, masking.Stats)
}

var (
	_ TokenAuthenticator = (*authn.Authenticator)(nil)
	_ TextMasker         = (*masking.Masker)(nil)
)

// Options configures a Server.
type Options struct {
	// Broker holds the approval requests. Required.
	Broker Broker
	// Authenticator verifies the ID tokens of logins and the bearer tokens of API calls: the
	// same verification, claim mappings and system: rules as the proxy. Required.
	Authenticator TokenAuthenticator
	// API serves the approvals API under approvals.APIPrefix (bearer tokens, no cookies).
	// Default: none (404).
	API http.Handler
	// Providers are the OpenID Connect issuers approvers log in with. At least one.
	Providers []*Provider
	// ExternalURL is where browsers reach the console (https). Required: it makes the login
	// callback URL and the links in notifications.
	ExternalURL *url.URL
	// SessionKey seals session cookies and derives CSRF tokens: at least 32 random bytes, the
	// same on every replica. Required.
	SessionKey []byte
	// SessionMaxAge bounds a session; it also ends when the login's ID token expires. Default 8h.
	SessionMaxAge time.Duration
	// ViewerGroups may see every approval request without deciding it. A request is always
	// visible to its requester and its approver groups. Default: none.
	ViewerGroups []string
	// SessionLink is the URL of a requester's session, with {session} replaced by its ID (e.g.
	// a dashboard of its API calls). Default: the console's page of that session when Sessions
	// is set, else the console's history of that session's approval requests.
	SessionLink string
	// Sessions is the session log the session pages (/sessions) read: each session's timeline
	// and its terminal recordings. Default: none; those pages then say that the console has no
	// session log, and the rest of the console works as before.
	Sessions SessionLog
	// Masker masks the reasons approvers type before they are stored and shown. Default: none.
	Masker TextMasker
	// Notifier is told of new requests and decisions. Default: none.
	Notifier *Notifier
	// Connected reports whether NATS is reachable. Default: always.
	Connected func() bool
	// Clock. Default: the real clock.
	Clock clock.WithTicker
	// Logger. Default: discard.
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.SessionMaxAge == 0 {
		o.SessionMaxAge = 8 * time.Hour
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	for _, p := range o.Providers {
		if p.HTTPClient == nil {
			p.HTTPClient = &http.Client{Timeout: 30 * time.Second}
		}
	}
}

// Validate reports missing or inconsistent options.
func (o *Options) Validate() error {
	var errs []error
	if o.Broker == nil {
		errs = append(errs, errors.New("a Broker is required"))
	}
	if o.Authenticator == nil {
		errs = append(errs, errors.New("an Authenticator is required"))
	}
	if len(o.Providers) == 0 {
		errs = append(errs, errors.New("at least one login provider is required"))
	}
	for _, p := range o.Providers {
		if p.IssuerURL == "" || p.ClientID == "" {
			errs = append(errs, errors.New("a login provider needs an issuer URL and a client ID"))
		}
	}
	if o.ExternalURL == nil || o.ExternalURL.Scheme != "https" || o.ExternalURL.Host == "" {
		errs = append(errs, errors.New("the ExternalURL must be an https URL: session cookies are Secure"))
	}
	if len(o.SessionKey) < 32 {
		errs = append(errs, errors.New("the SessionKey must have at least 32 bytes"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidOption, err)
	}
	return nil
}

// Server is the approvers' console: the web UI and the approvals API on one handler.
type Server struct {
	opts    Options
	log     *slog.Logger
	clock   clock.WithTicker
	sealer  *sealer
	revoked revocations
	hub     *hub
	views   *views
	mux     *http.ServeMux
	cop     *http.CrossOriginProtection
}

// New returns a Server; Start must run for its live feed.
func New(o Options) (*Server, error) {
	o.setDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	sl, err := newSealer(o.SessionKey)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: o, log: o.Logger, clock: o.Clock, sealer: sl, cop: http.NewCrossOriginProtection()}
	var onChange func(prev, cur *item)
	if o.Notifier != nil {
		onChange = o.Notifier.observe
	}
	s.hub = newHub(o.Broker, o.Clock, o.Logger, o.Connected, onChange)
	if s.views, err = newViews(); err != nil {
		return nil, err
	}
	s.routes()
	return s, nil
}

// Start follows the approval requests (and sends notifications) until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	if s.opts.Notifier != nil {
		go s.opts.Notifier.run(ctx)
	}
	return s.hub.Start(ctx)
}

// Ready reports an error until the console has loaded the approval requests and follows them.
func (s *Server) Ready(context.Context) error {
	_, _, live := s.hub.snapshot()
	if !live {
		return errors.New("console: not following the approval requests (NATS)")
	}
	return nil
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", s.withSession(s.handleInbox))
	m.HandleFunc("GET /approvals", s.withSession(s.handleHistory))
	m.HandleFunc("GET /approvals/{id}", s.withSession(s.handleRequest))
	m.HandleFunc("POST /approvals/{id}/decide", s.withSession(s.checkCSRF(s.handleDecide)))
	m.HandleFunc("GET /events", s.handleEvents)
	m.HandleFunc("GET /login", s.handleLogin)
	m.HandleFunc("GET /callback", s.handleCallback)
	m.HandleFunc("POST /logout", s.withSession(s.checkCSRF(func(w http.ResponseWriter, r *http.Request, _ *session) {
		s.handleLogout(w, r)
	})))
	s.sessionRoutes(m)
	m.Handle("GET /static/", http.StripPrefix("/static/", s.views.static()))
	api := s.opts.API
	if api == nil {
		api = http.NotFoundHandler()
	}
	m.Handle(approvals.APIPrefix, api)
	m.Handle(approvals.APIPrefix+"/", api)
	s.mux = m
}

// ServeHTTP serves the console and the approvals API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
	h.Set("Strict-Transport-Security", "max-age=31536000")
	s.mux.ServeHTTP(w, r)
}

// contentSecurityPolicy: no script but our own files, no inline script or style, nothing from
// other origins, no framing; forms post only here. (The recording page adds only
// 'wasm-unsafe-eval' for its player: playerCSP.)
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

type sessionHandler func(http.ResponseWriter, *http.Request, *session)

// withSession passes the request's session on, or sends the browser to log in.
func (s *Server) withSession(next sessionHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, err := s.sessionOf(r)
		if err != nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s.renderError(w, r, http.StatusUnauthorized, "Your session has ended. Sign in again.")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		next(w, r, sess)
	}
}

// checkCSRF refuses a state change that did not come from a page of the console in the same
// session: browsers' Sec-Fetch-Site and Origin must say same origin, and the form must carry
// the session's synchronizer token.
func (s *Server) checkCSRF(next sessionHandler) sessionHandler {
	return func(w http.ResponseWriter, r *http.Request, sess *session) {
		if err := s.cop.Check(r); err != nil {
			s.log.Warn("cross-origin state change refused", "user", sess.Identity.User, "path", r.URL.Path)
			s.renderError(w, r, http.StatusForbidden, "This request did not come from the console itself, so it was refused.")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		token := r.Header.Get("X-CSRF-Token")
		if token == "" {
			token = r.PostFormValue("csrf")
		}
		if !s.sealer.validCSRF(sess.ID, token) {
			s.log.Warn("state change without a valid CSRF token refused", "user", sess.Identity.User, "path", r.URL.Path)
			s.renderError(w, r, http.StatusForbidden, "This form has expired or did not come from your session. Reload the page and try again.")
			return
		}
		next(w, r, sess)
	}
}

// visible reports whether the signed-in identity may see a request: those the broker lets see
// it (its requester, the verified user behind the requester's impersonation, its approvers) and
// the viewer groups.
func (s *Server) visible(sess *session, it *item) bool {
	return it.VisibleTo(sess.Identity) || inGroups(sess.Identity, s.opts.ViewerGroups)
}

// mayDecide says why the identity cannot decide a request now, or "" when it can: the broker's
// rule, which it checks again when the decision is made.
func (s *Server) mayDecide(sess *session, it *item, now time.Time) string {
	if st := it.state(now); st != approvals.StatePending {
		return "This request is " + strings.ToLower(string(st)) + "."
	}
	why := it.MayDecide(sess.Identity)
	if why == "" {
		return ""
	}
	return strings.ToUpper(why[:1]) + why[1:] + "."
}

func (s *Server) sessionURL(sessionID string) string {
	if sessionID == "" {
		return ""
	}
	if s.opts.SessionLink != "" {
		return strings.ReplaceAll(s.opts.SessionLink, "{session}", url.QueryEscape(sessionID))
	}
	if s.opts.Sessions != nil {
		return "/sessions/" + url.PathEscape(sessionID)
	}
	return "/approvals?session=" + url.QueryEscape(sessionID)
}

// RequestURL is the console's page of approval request id.
func (s *Server) RequestURL(id string) string {
	return s.opts.ExternalURL.JoinPath("approvals", id).String()
}
