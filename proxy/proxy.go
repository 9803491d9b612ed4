package proxy

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/authn"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/masking"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/recording"
	"github.com/gatehouse-dev/gatehouse/serving"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// TokenAuthenticator verifies a bearer token. *authn.Authenticator implements it.
type TokenAuthenticator interface {
	// AuthenticateTokenDigest verifies token and returns as well its SHA-256 digest,
	// sha256.Sum256([]byte(token)), whether or not the token is valid: the proxy derives the
	// session ID of a request without a session label from it, so any other value would put
	// the clients of different tokens into one session.
	AuthenticateTokenDigest(ctx context.Context, token string) (*authn.Identity, [sha256.Size]byte, error)
	// CheckIdentity refuses identities no request may act as, whether they come from a token
	// or from a client's impersonation.
	CheckIdentity(id *authn.Identity) error
}

// Masker masks responses. *masking.Masker implements it.
type Masker interface {
	NeedsMasking(t masking.Target) bool
	Body(contentType, contentEncoding string, body []byte, t masking.Target) ([]byte, masking.Stats, error)
	// BodyInto is Body writing the masked body into buf's capacity when it is large enough.
	BodyInto(buf []byte, contentType, contentEncoding string, body []byte, t masking.Target) ([]byte, masking.Stats, error)
	Stream(contentType, contentEncoding string, r io.Reader, t masking.Target) (*masking.Reader, error)
	// Text masks what its text detectors find in free text (a client's reason).
	Text(dst, src []byte) ([]byte, masking.Stats)
	// JSON masks one JSON document (the stored object a patch is applied to).
	JSON(dst, src []byte, t masking.Target) ([]byte, masking.Stats, error)
	// Restore puts stored values back where a written object carries their placeholders.
	Restore(written, stored []byte, t masking.Target) (*masking.Restored, error)
}

// Recorder writes trail records. *trail.Publisher implements it.
type Recorder interface {
	// Ready reports whether a record would be accepted now.
	Ready() error
	// Publish accepts a record for publishing. It must not block: the records of finished
	// requests are written by one goroutine at a time (recordQueue), which a blocking Publish
	// would hold up for all.
	Publish(ctx context.Context, r trail.Record) error
	// PublishSync publishes a record and returns once JetStream stored it.
	PublishSync(ctx context.Context, r trail.Record) error
}

// Recordings stores the recordings of exec, attach and port-forward sessions.
// *recording.Publisher implements it.
type Recordings interface {
	// Ready reports whether a recording could start now.
	Ready() error
	// Open starts a recording, storing its first chunk before it returns.
	Open(ctx context.Context, info recording.Info, first []byte) (*recording.Writer, error)
}

var (
	_ TokenAuthenticator = (*authn.Authenticator)(nil)
	_ Masker             = (*masking.Masker)(nil)
	_ Recorder           = (*trail.Publisher)(nil)
	_ Recordings         = (*recording.Publisher)(nil)
)

// UnrecordedPolicy says what the proxy does when the trail cannot take a record.
type UnrecordedPolicy string

const (
	// RefuseUnrecorded answers 503 to requests that could not be recorded: no unrecorded action.
	RefuseUnrecorded UnrecordedPolicy = "Refuse"
	// AllowUnrecorded forwards them anyway, logging and counting each.
	AllowUnrecorded UnrecordedPolicy = "Allow"
)

// Options configures a Proxy.
type Options struct {
	// Upstream reaches kube-apiserver with the proxy's own credentials: a kubeconfig or the
	// in-cluster configuration. Required. The proxy talks HTTP/2 where the API server offers it
	// and HTTP/1.1 for protocol upgrades.
	Upstream *rest.Config
	// Authenticator verifies the clients' tokens. Required.
	Authenticator TokenAuthenticator
	// Masker masks responses that may carry secrets. Required: the proxy refuses to start
	// without it rather than pass secrets through.
	Masker Masker
	// Recorder writes a trail.Request record for every request and trail.Session records.
	// Required.
	Recorder Recorder
	// Recordings records exec, attach and port-forward sessions: the proxy serves them itself
	// (see terminal.go) and refuses those it cannot record, as it refuses unrecorded requests.
	// Required.
	Recordings Recordings
	// Unrecorded says what happens when Recorder cannot take a record, or Recordings a
	// recording. Default RefuseUnrecorded.
	Unrecorded UnrecordedPolicy
	// WriteRecordTimeout is how long the answer to a write waits for its trail record to be
	// stored (NATS blips are waited out) before the client gets an error instead. Default 10s.
	WriteRecordTimeout time.Duration
	// StreamIdleTimeout ends an exec, attach or port-forward session after that long without
	// traffic, as the kubelet does. Default 4 hours.
	StreamIdleTimeout time.Duration
	// TerminalDelay is how long a partial line of a terminal's output is held back, so that a
	// secret cut by a frame boundary is masked whole (recording.LiveOptions.Delay). Default 10ms.
	TerminalDelay time.Duration
	// Source names this proxy instance in records. Default "proxy/<hostname>".
	Source string
	// MaxResponseBytes bounds a response body that must be read whole to be masked. Larger
	// responses fail closed with 502. Default 256 MiB.
	MaxResponseBytes int64
	// SessionActivityInterval is how often a Session record reports an active session.
	// Default 1 minute.
	SessionActivityInterval time.Duration
	// Policy evaluates access policies before a request is forwarded: reads and requests a
	// deny rule refuses are answered here; everything else is forwarded, and admission decides
	// what needs approval. Default: none (the admission webhooks still enforce the policies on
	// writes).
	Policy PolicyEvaluator
	// AdmissionSees reports whether admission can hold a request for approval. The proxy
	// refuses a request a rule holds for approval when admission cannot see it: nobody could
	// approve it. Default policy.AdmissionSees (the shipped webhook configurations).
	AdmissionSees func(policy.Attributes) bool
	// Approvals reads the approval requests admission holds calls for: the proxy holds its
	// client while one is pending and re-sends the call once it is approved. It never writes
	// approval state. Default: none; a held call is answered with admission's denial, which says
	// how to approve and retry.
	Approvals ApprovalReader
	// MaxHold is the longest a client is held waiting for approvers; a client's own hold
	// duration (Gatehouse-Hold) cannot exceed it. Default 10 minutes.
	MaxHold time.Duration
	// Impersonation, when set, lets clients impersonate (kubectl --as) whom it authorizes the
	// verified identity to impersonate; the verified user is kept in the extra
	// gatehouse.dev/original-user. Default: nil, every Impersonate-* header is refused.
	Impersonation authn.ImpersonationAuthorizer
	// ConsoleURL is where `gatehouse console` serves the approvals API and the approvers' web
	// UI. The proxy does not serve the approvals API (it has no right to decide): a call to
	// approvals.APIPrefix is answered 404 with this URL in the message and in the
	// approvals.ConsoleHeader header, where `gatehouse approvals` finds it. Default: none, and the
	// answer says to ask an administrator.
	ConsoleURL string
	// Metrics registers the proxy's metrics. Default: not registered.
	Metrics prometheus.Registerer
	// Logger receives request errors, never tokens or headers. Default: discard.
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Unrecorded == "" {
		o.Unrecorded = RefuseUnrecorded
	}
	if o.Source == "" {
		host, _ := os.Hostname()
		o.Source = "proxy/" + host
	}
	if o.MaxResponseBytes == 0 {
		o.MaxResponseBytes = 256 << 20
	}
	if o.MaxHold == 0 {
		o.MaxHold = 10 * time.Minute
	}
	if o.AdmissionSees == nil {
		o.AdmissionSees = policy.AdmissionSees
	}
	if o.SessionActivityInterval == 0 {
		o.SessionActivityInterval = time.Minute
	}
	if o.WriteRecordTimeout == 0 {
		o.WriteRecordTimeout = 10 * time.Second
	}
	if o.StreamIdleTimeout == 0 {
		o.StreamIdleTimeout = 4 * time.Hour
	}
	if o.TerminalDelay == 0 {
		o.TerminalDelay = 10 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports missing or inconsistent options.
func (o *Options) Validate() error {
	var errs []error
	if o.Upstream == nil {
		errs = append(errs, errors.New("option Upstream is required"))
	}
	if o.Authenticator == nil {
		errs = append(errs, errors.New("option Authenticator is required"))
	}
	if o.Masker == nil {
		errs = append(errs, errors.New("option Masker is required: the proxy does not pass unmasked responses"))
	}
	if o.Recorder == nil {
		errs = append(errs, errors.New("option Recorder is required: the proxy does not act unrecorded"))
	}
	if o.Recordings == nil {
		errs = append(errs, errors.New("option Recordings is required: the proxy does not pass exec, attach or port-forward sessions unrecorded"))
	}
	if o.MaxHold < 0 {
		errs = append(errs, errors.New("option MaxHold must not be negative"))
	}
	switch o.Unrecorded {
	case "", RefuseUnrecorded, AllowUnrecorded:
	default:
		errs = append(errs, fmt.Errorf("option Unrecorded must be %s or %s", RefuseUnrecorded, AllowUnrecorded))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	return nil
}

// Proxy is the authenticating front proxy, an http.Handler.
type Proxy struct {
	opts     Options
	upstream *url.URL
	rp       *httputil.ReverseProxy
	info     *request.RequestInfoFactory
	// upgradeRT reaches kube-apiserver for the sessions the proxy serves itself.
	upgradeRT http.RoundTripper
	// credential adds the proxy's bearer token to the ordinary (not upgraded) requests rewrite
	// builds; nil when its credential is not a bearer token (newTransport).
	credential *bearerAuth
	sessions   *sessions
	values     *sessionValues
	bodies     *bodyBuffers
	metrics    *metrics
	log        *slog.Logger
	// records counts the trail records being written off the request path; queue holds them
	// until they are.
	records sync.WaitGroup
	queue   recordQueue
}

// NewProxy returns a Proxy for the options.
func NewProxy(o Options) (*Proxy, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.setDefaults()
	u, err := upstreamURL(o.Upstream)
	if err != nil {
		return nil, err
	}
	rt, credential, err := newTransport(o.Upstream)
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		opts:     o,
		upstream: u,
		info: &request.RequestInfoFactory{
			APIPrefixes:          sets.NewString("api", "apis"),
			GrouplessAPIPrefixes: sets.NewString("api"),
		},
		metrics: newMetrics(o.Metrics, o.Masker),
		log:     o.Logger,
	}
	p.sessions = newSessions(o.SessionActivityInterval, o.Source, o.Recorder, o.Logger)
	p.values = newSessionValues()
	p.bodies = &bodyBuffers{}
	p.upgradeRT = rt
	p.credential = credential
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      &holdTransport{next: rt, p: p},
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.proxyError,
		// Watches and streamed logs are flushed as they come (ContentLength -1); the rest
		// is buffered by the server as usual.
		FlushInterval: 0,
		ErrorLog:      slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn),
		// The buffer that copies a response to the client is reused, instead of 32 KiB
		// allocated and cleared per response. It only ever holds what the client is sent.
		BufferPool: &copyBuffers{},
	}
	return p, nil
}

// copyBuffers is the ReverseProxy's httputil.BufferPool.
type copyBuffers struct{ pool sync.Pool }

var _ httputil.BufferPool = (*copyBuffers)(nil)

// copyBufferSize is the size of ReverseProxy's own copy buffers.
const copyBufferSize = 32 << 10

func (c *copyBuffers) Get() []byte {
	if b, ok := c.pool.Get().(*[]byte); ok {
		return *b
	}
	return make([]byte, copyBufferSize)
}

func (c *copyBuffers) Put(b []byte) {
	if cap(b) != copyBufferSize {
		return
	}
	b = b[:copyBufferSize]
	c.pool.Put(&b)
}

func upstreamURL(cfg *rest.Config) (*url.URL, error) {
	host := cfg.Host
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("proxy: upstream host %q: %w", cfg.Host, err)
	}
	u.Path = strings.TrimSuffix(u.Path+cfg.APIPath, "/")
	return u, nil
}

// requestState carries what ServeHTTP learned about a request to the ReverseProxy hooks and the
// upstream transport.
type requestState struct {
	// auditID is the Audit-ID of the current upstream attempt; heldAuditID that of the attempt
	// admission held for approval, if it did.
	auditID, heldAuditID string
	id                   *authn.Identity
	session              string
	client               string
	opts                 clientOptions
	info                 *request.RequestInfo
	attrs                policy.Attributes
	target               masking.Target
	mask                 bool
	upgrade              bool
	w                    *recordingWriter
	body                 []byte // the request body, read whole for the policy and a re-send
	restored             bool   // body carries stored values put back in place of placeholders
	// hold marks a write the proxy's evaluation holds for approval ("policy/rule") or cannot
	// decide (holdUndecided), in the extra identity.ExtraHold.
	hold       string
	decision   *trail.Policy // the policy rule that decided, if one matched
	approvalID string
	warnings   []string // Warning headers to add to the response
	masking    masking.Stats
	maskedRdr  *masking.Reader
	errReason  string

	start time.Time
	// in is the client's request, as forwarded.
	in *http.Request
	// upgradeKind says what an upgrade request is for; terminal and port-forward sessions are
	// served by the proxy itself.
	upgradeKind upgradeKind
	// opened is set once the open record of a long request is stored; recorded once the record
	// of the finished request is (a write's, before its answer).
	opened, recorded bool
	// recordingID names the recording of a session served by the proxy.
	recordingID string

	// mu guards what stream goroutines add while the request runs.
	mu          sync.Mutex
	extraMasked masking.Stats

	// answerValues holds the values of the headers setAnswerHeader sets.
	answerValues [2]string
}

// setAnswerHeader sets a header of the client's answer, as http.Header.Set does, its value held
// in answerValues[i]: the proxy's own headers of every answer (Audit-Id, Gatehouse-Session) take
// no allocation of their own. The slice is capped, so an Add to the header cannot write over
// another's value.
func (st *requestState) setAnswerHeader(i int, name, value string) {
	st.answerValues[i] = value
	st.w.Header()[name] = st.answerValues[i : i+1 : i+1]
}

// addMasking adds what a stream goroutine masked.
func (st *requestState) addMasking(s masking.Stats) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.extraMasked.Merge(s)
}

// setErrReason sets the request's error from a stream goroutine.
func (st *requestState) setErrReason(reason string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.errReason = reason
}

type stateKey struct{}

// forwardContext is the context of a request ServeHTTP forwards. It carries the request's state
// under stateKey, as context.WithValue would, and, when grow is set (a short request), its Done
// grows the stack of the goroutine that calls it ahead (growUpstreamStack).
type forwardContext struct {
	context.Context
	st   *requestState
	grow bool
}

func (c *forwardContext) Value(key any) any {
	if _, ok := key.(stateKey); ok {
		return c.st
	}
	return c.Context.Value(key)
}

// Done returns the parent's Done.
func (c *forwardContext) Done() <-chan struct{} {
	if c.grow {
		growUpstreamStack()
	}
	return c.Context.Done()
}

func stateOf(r *http.Request) *requestState {
	st, _ := r.Context().Value(stateKey{}).(*requestState)
	return st
}

// ServeHTTP authenticates, checks and forwards one request, and records it.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !mayStayOpen(r) {
		growStack()
	}
	start := time.Now()
	st := &requestState{auditID: trail.NewID(), w: newRecordingWriter(w), start: start}
	st.setAnswerHeader(0, "Audit-Id", st.auditID)
	st.upgrade = isUpgrade(r)
	st.client = r.UserAgent()
	// The options' path prefix goes before anything reads the path.
	opts, optsErr := readClientOptions(r)
	st.opts = opts
	info, err := p.info.NewRequestInfo(r)
	if err != nil {
		info = &request.RequestInfo{Path: r.URL.Path, Verb: strings.ToLower(r.Method)}
	}
	st.info = info
	st.attrs = attributesOf(info)

	defer func() {
		// The record is written off the request's path: the client has its answer as soon as the
		// handler returns (recordQueue).
		p.queueRecord(finishedRequest{r: r, st: st, start: start, end: time.Now()})
	}()

	if optsErr != nil {
		st.errReason = "invalid client options"
		p.refuse(st, http.StatusBadRequest, metav1.StatusReasonBadRequest, optsErr.Error()+".")
		return
	}
	token, tokenErr := bearerToken(r)
	if tokenErr != nil {
		st.errReason = "authentication: " + authn.ReasonMissing
		p.metrics.authFailures.WithLabelValues(authn.ReasonMissing).Inc()
		p.refuse(st, http.StatusUnauthorized, metav1.StatusReasonUnauthorized, "Gatehouse requires a bearer token from a trusted OIDC issuer (Authorization: Bearer <token>).")
		return
	}
	id, digest, err := p.opts.Authenticator.AuthenticateTokenDigest(r.Context(), token)
	if err != nil {
		reason := authn.Reason(err)
		st.errReason = "authentication: " + reason
		p.metrics.authFailures.WithLabelValues(reason).Inc()
		p.log.Info("authentication failed", "auditID", st.auditID, "reason", reason, "err", err)
		if errors.Is(err, authn.ErrIssuerUnavailable) {
			p.refuse(st, http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, "Gatehouse cannot reach the token's OIDC issuer yet; retry shortly.")
			return
		}
		p.refuse(st, http.StatusUnauthorized, metav1.StatusReasonUnauthorized, "Gatehouse could not authenticate the bearer token ("+reason+").")
		return
	}
	st.id = id
	st.session = sessionID(opts.session, digest, id)
	st.setAnswerHeader(1, SessionHeader, st.session)
	p.sessions.touch(r.Context(), st.session, opts.session, id, st.client, sourceIP(r))

	if strings.HasPrefix(r.URL.Path, approvals.APIPrefix+"/") || r.URL.Path == approvals.APIPrefix {
		// Gatehouse's own API, served by the console; never forwarded.
		p.consolePointer(st)
		return
	}

	// Checked on the request as the client sent it: a header named in Connection is gone
	// before Rewrite runs.
	if name, ok := impersonationHeader(r.Header); ok {
		if err := p.clientImpersonation(r, st, name); err != nil {
			return
		}
	}

	if err := p.opts.Recorder.Ready(); err != nil {
		p.metrics.unrecorded.Inc()
		if p.opts.Unrecorded == RefuseUnrecorded {
			st.errReason = "trail unavailable"
			p.log.Error("refusing request: the trail cannot record it", "auditID", st.auditID, "err", err)
			p.refuse(st, http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, "Gatehouse cannot record this request right now (the trail is unavailable), so it does not forward it. Retry shortly.")
			return
		}
		p.log.Error("forwarding a request the trail may not record", "auditID", st.auditID, "err", err)
	}

	if info.IsResourceRequest {
		st.target = masking.Target{
			Group: info.APIGroup, Version: info.APIVersion, Resource: info.Resource,
			Subresource: info.Subresource, Namespace: info.Namespace, Name: info.Name,
			Watch: info.Verb == "watch",
		}
	} else {
		st.target = masking.Target{Path: info.Path}
	}
	st.mask = p.opts.Masker.NeedsMasking(st.target)

	if hasBody(r) {
		if err := p.readBody(r, st); err != nil {
			return
		}
	}
	if p.opts.Policy != nil && info.IsResourceRequest {
		if err := p.applyPolicy(r, st); err != nil {
			return
		}
	}

	if st.upgrade {
		st.upgradeKind = classifyUpgrade(r, info)
		if st.upgradeKind == upgradeOther && st.mask {
			st.errReason = "protocol upgrade that cannot be masked"
			p.refuse(st, http.StatusBadRequest, metav1.StatusReasonBadRequest, "Gatehouse does not forward this protocol upgrade: it could not mask what the connection would carry. "+
				"Exec, attach, port-forward, and watches and logs over WebSocket are supported.")
			return
		}
	}
	r = r.WithContext(&forwardContext{Context: r.Context(), st: st, grow: !st.upgrade && !mayStayOpen(r)})
	st.in = r
	if isLong(r, info, st.upgrade) {
		if err := p.recordOpen(r, st, start); err != nil {
			return
		}
	}
	if st.upgrade {
		p.metrics.streams.Inc()
		defer p.metrics.streams.Dec()
	}
	switch st.upgradeKind {
	case upgradeTerminal:
		p.serveTerminal(r, st)
		return
	case upgradePortForward:
		p.servePortForward(r, st)
		return
	}
	p.rp.ServeHTTP(st.w, r)
}

// mayStayOpen reports requests that may be watches or followed logs, by their URL as sent: they
// live long, and their stacks are not grown ahead (growStack), which would make thousands of
// open watches hold more memory for a cost they pay once.
func mayStayOpen(r *http.Request) bool {
	return strings.Contains(r.URL.RawQuery, "watch") || strings.Contains(r.URL.RawQuery, "follow") ||
		strings.Contains(r.URL.Path, "/watch/")
}

// growStackBytes is how much stack growStack asks for: more than a request's handler uses
// below ServeHTTP (net/http, httputil.ReverseProxy and the masker) with a small response.
const growStackBytes = 12 << 10

// growStack grows the goroutine's stack, a new one per request, while it is shallow. The
// handler needs more than a goroutine starts with; grown where it first runs out (deep in
// ReverseProxy, at the masker), the stack is copied with every frame above adjusted, which cost
// a small GET several microseconds. Grown here, it is copied with two frames.
//
//go:noinline
func growStack() byte {
	var pad [growStackBytes]byte
	return touchStack(&pad)
}

//go:noinline
func touchStack(pad *[growStackBytes]byte) byte { return pad[len(pad)-1] }

// upstreamStackBytes is how much stack growUpstreamStack asks for: more than the HTTP/2
// transport's goroutine of a request uses to encode its headers.
const upstreamStackBytes = 4 << 10

// growUpstreamStack grows the stack of the HTTP/2 transport's goroutine of a request, a new one
// per request, while it is shallow, as growStack grows the handler's. That goroutine writes the
// request's headers; the new Audit-ID of every request makes the HPACK encoder evict an entry of
// its dynamic table, a path deep enough (about 15 frames) to outgrow the goroutine's first
// stack, which cost every request about 3µs of copying. The transport's goroutine calls the
// request context's Done first thing (waiting for its turn to write headers), two frames deep:
// grown there, the copy is a fraction of that. On other goroutines, whose stacks are grown
// already, it costs the clearing of the array: tens of nanoseconds per call, and a small GET
// calls Done about six times. Both the order of the transport's calls (golang.org/x/net/http2's
// writeRequest) and the small first stack (the runtime starts goroutines at an average of the
// stacks it scanned) are implementation details: BenchmarkProxyGet shows when an upgrade of
// either takes the gain away.
//
//go:noinline
func growUpstreamStack() byte {
	var pad [upstreamStackBytes]byte
	return touchUpstreamStack(&pad)
}

//go:noinline
func touchUpstreamStack(pad *[upstreamStackBytes]byte) byte { return pad[len(pad)-1] }

// Flush waits until the records of the requests served so far are handed to the Recorder. Call
// it after the server stopped and before the Recorder is closed.
func (p *Proxy) Flush() {
	p.writeQueued()
	p.records.Wait()
}

// rewrite builds the outbound request. It runs after ReverseProxy removed hop-by-hop headers,
// so what it sets here reaches kube-apiserver.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	st := stateOf(pr.In)
	pr.SetURL(p.upstream)
	// The forwarded client headers go into a new map sized for what is added below: the
	// client's map, cloned at its own size, would grow on the way (a new table and a copy per
	// request). The value slices are ReverseProxy's copies, not the client's.
	h := make(http.Header, outboundHeaders)
	for name, vs := range pr.Out.Header {
		if forwarded(name) {
			h[name] = vs
		}
	}
	pr.Out.Header = h
	stripTokenProtocol(h)
	if st.upgradeKind == upgradeWatchWS || st.upgradeKind == upgradeLogWS {
		// Compressed frames could not be masked.
		h.Del("Sec-Websocket-Extensions")
	}
	p.setIdentityHeaders(h, st)
	// The values of the headers set below share one array, each its own capped slice, as
	// setIdentityHeaders does: what they set equals http.Header.Set.
	var own [3]string
	n := 0
	set := func(name, value string) {
		own[n] = value
		h[name] = own[n : n+1 : n+1]
		n++
	}
	set("Audit-Id", st.auditID) // setAttempt(h, st.auditID, "")
	if st.mask {
		// Masking is structural: ask for JSON, and let the transport handle compression so
		// the body arrives decoded.
		set("Accept", jsonOnly(strings.Join(h.Values("Accept"), ",")))
		h.Del("Accept-Encoding")
	}
	if p.credential != nil && !st.upgrade {
		// The proxy's own credential, as the transport would add it (on a copy of the request).
		// The client's Authorization was not forwarded.
		set("Authorization", p.credential.header())
	}
}

// outboundHeaders is the size of an outbound request's header map: the forwarded client headers
// and the proxy's own (credential, impersonation, extras, Audit-ID) of a typical request.
const outboundHeaders = 24

// holdUndecided is the hold mark of a write the proxy cannot decide without the final object.
const holdUndecided = "undecided"

// setAttempt marks one upstream attempt: its own Audit-ID and, for the re-sent call of a held
// request, the approval it is sent under.
func setAttempt(h http.Header, auditID, approvalID string) {
	h.Set("Audit-Id", auditID)
	if approvalID != "" {
		h.Set(extraHeader(identity.ExtraApprovalID), approvalID)
	}
}

// setIdentityHeaders impersonates the verified identity, with the gateway's extras. It is the one
// place that sets who a request acts as; every attempt of a request carries what it set.
//
// It runs for every request, so it writes the header map directly, under the names
// http.Header.Set and Add would use (canonical), and takes the values of the headers it sets
// from one array: each header gets a slice of its own, capped, so that a later Add to one header
// cannot write over the next. What it sets equals Set for the user, the UID and each Gatehouse
// extra, and Add for each group and each of the identity's own extras
// (TestSetIdentityHeadersAsBefore).
func (p *Proxy) setIdentityHeaders(h http.Header, st *requestState) {
	id := st.id
	var buf [maxGatehouseExtras]gatehouseExtra
	extras := p.appendGatehouseExtras(buf[:0], st)
	vals := make([]string, 0, 2+len(id.Groups)+len(extras))
	take := func(vs ...string) []string {
		n := len(vals)
		vals = append(vals, vs...)
		return vals[n:len(vals):len(vals)]
	}
	h[headerImpersonateUser] = take(id.User)
	if len(id.Groups) > 0 {
		if prev := h[headerImpersonateGroup]; len(prev) > 0 {
			// Add's result, in a new array: prev's may be another header map's.
			h[headerImpersonateGroup] = slices.Concat(prev, id.Groups)
		} else {
			h[headerImpersonateGroup] = take(id.Groups...)
		}
	}
	if id.UID != "" {
		h[headerImpersonateUID] = take(id.UID)
	}
	for k, vs := range id.Extra {
		for _, v := range vs {
			h.Add(extraHeader(k), v)
		}
	}
	for _, e := range extras {
		h[canonicalExtraHeader(e.key)] = take(e.value)
	}
}

// The canonical names of the impersonation headers the proxy sets.
const (
	headerImpersonateUser  = "Impersonate-User"
	headerImpersonateGroup = "Impersonate-Group"
	headerImpersonateUID   = "Impersonate-Uid"
)

// gatehouseExtra is one extra the proxy adds to a client's identity.
type gatehouseExtra struct{ key, value string }

// maxGatehouseExtras is how many extras appendGatehouseExtras appends at most.
const maxGatehouseExtras = 6

// gatehouseExtras are the extras that tell kube-apiserver, the webhooks and the audit log
// where a request came from.
func (p *Proxy) gatehouseExtras(st *requestState) map[string]string {
	var buf [maxGatehouseExtras]gatehouseExtra
	extras := p.appendGatehouseExtras(buf[:0], st)
	m := make(map[string]string, len(extras))
	for _, e := range extras {
		m[e.key] = e.value
	}
	return m
}

// appendGatehouseExtras appends the gatehouseExtras to dst, each key once.
func (p *Proxy) appendGatehouseExtras(dst []gatehouseExtra, st *requestState) []gatehouseExtra {
	dst = append(dst,
		gatehouseExtra{identity.ExtraSessionID, st.session},
		gatehouseExtra{identity.ExtraIssuer, st.id.Issuer},
		gatehouseExtra{identity.ExtraSubject, st.id.Subject},
	)
	if c := clientName(st.client); c != "" {
		dst = append(dst, gatehouseExtra{identity.ExtraClient, c})
	}
	if st.hold != "" {
		dst = append(dst, gatehouseExtra{identity.ExtraHold, st.hold})
	}
	if st.opts.reason != "" {
		// The reason travels to admission, which stores it on an approval request, and into
		// kube-apiserver's audit log: masked here, before it leaves the proxy.
		masked, _ := p.opts.Masker.Text(nil, []byte(st.opts.reason))
		dst = append(dst, gatehouseExtra{identity.ExtraReason, string(masked)})
	}
	return dst
}

// secretsMaskedWarning tells a client reading Secrets that their values are placeholders.
const secretsMaskedWarning = `299 - "Gatehouse masked the values of these Secrets: each shows as a placeholder, and sizes (kubectl describe) are the placeholder's, not the value's"`

// isHelm reports whether r comes from Helm, which names itself "Helm/<version>".
func isHelm(r *http.Request) bool {
	return strings.HasPrefix(r.UserAgent(), "Helm/")
}

// modifyResponse masks what may carry secrets. It runs before the response headers are written.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	st := stateOf(resp.Request)
	// kube-apiserver answers with the Audit-ID it was sent: the attempt's, which the client's
	// answer already carries (ServeHTTP and resend set it). ReverseProxy adds the upstream's
	// headers to the answer's, so it would go out twice.
	resp.Header.Del("Audit-Id")
	if st.upgrade && resp.StatusCode != http.StatusSwitchingProtocols {
		// A failed upgrade must not leave a connection the client could go on using.
		st.w.Header().Set("Connection", "close")
	}
	if st.mask {
		p.maskWarnings(resp.Header, st)
	}
	for _, warning := range st.warnings {
		resp.Header.Add("Warning", warning)
	}
	if st.mask && isSecrets(st.target) && resp.StatusCode == http.StatusOK && !isHelm(resp.Request) {
		// kubectl describe shows each value's size: of the placeholder, which reveals nothing.
		// Helm reads its release records on every command and has no sizes to show: it is
		// spared a warning it would print each time.
		resp.Header.Add("Warning", secretsMaskedWarning)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		switch {
		case st.upgradeKind == upgradeWatchWS || st.upgradeKind == upgradeLogWS:
			return p.maskWebSocket(resp, st)
		case st.mask:
			// classifyUpgrade let nothing else through; never pass an unmasked stream.
			return fmt.Errorf("%w: an upgraded connection", masking.ErrUnmaskable)
		}
		return nil
	}
	if !st.mask {
		return p.afterMasking(resp, st)
	}
	ct := resp.Header.Get("Content-Type")
	// The masker hands over the values of the Secrets it masks, for the session's exec output.
	target := st.target
	if isStream(st.info, resp) {
		target.SecretValue = p.values.hook(st)
		rd, err := p.opts.Masker.Stream(ct, resp.Header.Get("Content-Encoding"), resp.Body, target)
		if err != nil {
			return err
		}
		st.maskedRdr = rd
		resp.Body = rd
		resp.ContentLength = -1
		resp.Header.Del("Content-Length")
		resp.Header.Del("Content-Encoding")
		return nil
	}
	body, err := readBody(p.bodies.getRead(), resp.Body, resp.ContentLength, p.opts.MaxResponseBytes)
	_ = resp.Body.Close()
	if err != nil {
		return err
	}
	// A response read whole hands its values over to the session's set in one step.
	var flush func()
	target.SecretValue, flush = p.values.batchHook(st)
	out := p.bodies.getMasked()
	start := time.Now()
	masked, stats, err := p.opts.Masker.BodyInto(out, ct, resp.Header.Get("Content-Encoding"), body, target)
	p.metrics.maskingTime.Observe(time.Since(start).Seconds())
	if flush != nil {
		flush()
	}
	if err != nil {
		p.bodies.putRead(body)
		p.bodies.putMasked(out)
		return err
	}
	st.masking = stats
	resp.Body = p.bodies.reader(body, out, masked)
	resp.ContentLength = int64(len(masked))
	resp.Header.Set("Content-Length", strconv.Itoa(len(masked)))
	resp.Header.Del("Content-Encoding")
	return p.afterMasking(resp, st)
}

// maskWarnings masks the Warning headers kube-apiserver passes on (admission webhooks',
// ValidatingAdmissionPolicy's), which can quote the values of the object written: the Secret
// values the session read, and what the text detectors find.
func (p *Proxy) maskWarnings(h http.Header, st *requestState) {
	warnings := h.Values("Warning")
	if len(warnings) == 0 {
		return
	}
	var values *recording.Values
	if st.session != "" {
		values = p.values.of(st.session)
	}
	m := recording.NewMasker(p.opts.Masker, values)
	masked := make([]string, 0, len(warnings))
	for _, w := range warnings {
		masked = append(masked, string(m.Mask(nil, []byte(w))))
	}
	h["Warning"] = masked
}

// afterMasking runs once a response that is not a stream is ready to go to the client: the
// record of a write is stored first.
func (p *Proxy) afterMasking(resp *http.Response, st *requestState) error {
	if isWrite(st.info) && !st.upgrade && !isStream(st.info, resp) {
		return p.recordWrite(resp, st)
	}
	return nil
}

// proxyError answers when the upstream call or masking failed. It never echoes the outbound
// request, which carries the proxy's own headers.
func (p *Proxy) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	st := stateOf(r)
	if errors.Is(err, context.Canceled) {
		st.errReason = "client went away"
		w.WriteHeader(499)
		return
	}
	if errors.Is(err, errUnrecorded) {
		st.errReason = "the trail did not store the record of a write"
		p.log.Error("answering a write that took effect with an error: its record was not stored", "auditID", st.auditID, "err", err)
		p.refuse(st, http.StatusInternalServerError, metav1.StatusReasonInternalError, "The API server carried out this request, but Gatehouse could not record it (the trail is unavailable), so it does not pass on the result. Check the outcome with a read before you retry.")
		return
	}
	var maskErr bool
	if errors.Is(err, masking.ErrMalformed) || errors.Is(err, masking.ErrUnmaskable) || errors.Is(err, masking.ErrTooLarge) {
		maskErr = true
		p.metrics.maskFailures.Inc()
		st.errReason = "masking failed"
	} else {
		p.metrics.upstreamErrors.Inc()
		st.errReason = "upstream unavailable"
	}
	// A transport error names the URL, whose query may carry secrets (exec commands): log the
	// cause only.
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	p.log.Error("request failed", "auditID", st.auditID, "reason", st.errReason, "err", err)
	if maskErr {
		p.refuse(st, http.StatusBadGateway, metav1.StatusReasonInternalError, "Gatehouse could not mask the API server's response, so it does not pass it on. The request may have taken effect; check with a read.")
		return
	}
	p.refuse(st, http.StatusBadGateway, metav1.StatusReasonServiceUnavailable, "Gatehouse could not reach the Kubernetes API server.")
}

// refuse answers with a Kubernetes Status object, which kubectl shows as the error message.
func (p *Proxy) refuse(st *requestState, code int, reason metav1.StatusReason, message string) {
	serving.WriteStatus(st.w, serving.FailureStatus(code, reason, message, nil))
}

// record writes the trail record of a finished request, unless it is already stored (a write's).
func (p *Proxy) record(r *http.Request, st *requestState, start, end time.Time) {
	if st.recorded {
		return
	}
	rec := p.newRecord(r, st, start)
	rec.Duration = end.Sub(start)
	if st.w.firstByte.IsZero() {
		rec.Latency = rec.Duration
	}
	p.metrics.observe(rec)
	if err := p.opts.Recorder.Publish(context.WithoutCancel(r.Context()), rec); err != nil {
		p.metrics.unrecorded.Inc()
		p.log.Error("trail record not written", "auditID", st.auditID, "err", err)
	}
}

// newRecord builds the trail record of a request as it stands.
func (p *Proxy) newRecord(r *http.Request, st *requestState, start time.Time) *trail.Request {
	code := st.w.status
	if code == 0 {
		code = http.StatusOK
	}
	if st.maskedRdr != nil {
		st.masking = st.maskedRdr.Stats()
	}
	st.mu.Lock()
	masked := masking.Stats{}
	masked.Merge(st.masking)
	masked.Merge(st.extraMasked)
	errReason := st.errReason
	st.mu.Unlock()
	info := st.info
	rec := &trail.Request{
		// The record's ID is the first attempt's Audit-ID: fixed before the call is forwarded.
		Meta:        trail.Meta{ID: cmp.Or(st.heldAuditID, st.auditID), Time: start, Source: p.opts.Source},
		AuditID:     st.auditID,
		HeldAuditID: st.heldAuditID,
		SessionID:   st.session,
		Client:      truncate(st.client, 256),
		SourceIP:    sourceIP(r),
		Operation:   st.attrs.TrailOperation(),
		Code:        code,
		DryRun:      st.attrs.DryRun,
		Latency:     st.w.firstByte.Sub(start),
		BytesIn:     max(r.ContentLength, 0) + st.w.hijackedIn.Load(),
		BytesOut:    st.w.bytes + st.w.hijackedOut.Load(),
		Error:       errReason,
		RecordingID: st.recordingID,
	}
	if !info.IsResourceRequest {
		rec.Operation.Path = info.Path
	}
	if st.id != nil {
		rec.Identity = st.id.Identity
	}
	rec.Decision = st.decision
	rec.ApprovalID = st.approvalID
	if masked.Fields > 0 {
		rec.Masking = &trail.Masking{Fields: masked.Fields, Detectors: masked.Detectors}
	}
	return rec
}

func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// consolePointer answers a call of the approvals API, which the console serves.
func (p *Proxy) consolePointer(st *requestState) {
	st.errReason = "approvals API is served by the console"
	msg := "The approvals API is served by gatehouse console, not by the proxy; ask a Gatehouse administrator for its URL and run: gatehouse approvals --console <URL> ..."
	if u := strings.TrimSuffix(p.opts.ConsoleURL, "/"); u != "" {
		st.w.Header().Set(approvals.ConsoleHeader, u)
		msg = "The approvals API is served by gatehouse console at " + u + approvals.APIPrefix + ", not by the proxy: gatehouse approvals finds it there (or run gatehouse approvals --console " + u + " ...)."
	}
	p.refuse(st, http.StatusNotFound, metav1.StatusReasonNotFound, msg)
}
