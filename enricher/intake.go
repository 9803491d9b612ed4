package enricher

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// IntakePath is the path the intake serves; the audit webhook kubeconfig's server URL ends
// with it.
const IntakePath = "/audit"

// ErrUnauthenticated is answered (401) to an intake request without a verified client
// certificate.
var ErrUnauthenticated = errors.New("enricher: a verified client certificate is required")

var _ http.Handler = (*Enricher)(nil)

// ServeHTTP is the audit webhook intake. It accepts an audit.k8s.io/v1 EventList (POST,
// application/json) from a client with a verified certificate, reads it event by event, masks
// every event, and writes the batch to the spool, synced to disk, before it answers 200. NATS
// need not be up: the spool is published to JetStream in order as soon as it is. A retry of the
// same batch by kube-apiserver is stored once. When the batch cannot be stored (malformed, too
// large, the spool full) the answer is an error status, and nothing of it is kept: a 5xx makes
// kube-apiserver retry.
func (e *Enricher) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var seen [][]byte
	var observe func([]byte)
	if e.observe != nil {
		observe = func(ev []byte) { seen = append(seen, bytes.Clone(ev)) }
	}
	res := e.intake(w, r, observe)
	if e.observe != nil {
		e.observe(seen, res.code)
	}
	e.metrics.requests.WithLabelValues(strconv.Itoa(res.code)).Inc()
	if res.err != nil {
		level := slog.LevelError
		if res.code == http.StatusServiceUnavailable {
			level = slog.LevelWarn // kube-apiserver retries
		}
		e.log.Log(r.Context(), level, "audit batch refused", "status", res.code, "bytes", res.bytes, "events", res.events, "remote", r.RemoteAddr, "err", res.err)
		writeStatus(w, res.code, res.message)
		return
	}
	e.log.Debug("audit batch stored", "bytes", res.bytes, "events", res.events, "duplicate", res.duplicate, "took", time.Since(start))
	w.WriteHeader(http.StatusOK)
}

// intakeResult is what the intake did with one request.
type intakeResult struct {
	code      int
	err       error  // for the log
	message   string // for the client
	bytes     int64
	events    int
	duplicate bool
}

func refuse(code int, err error) intakeResult {
	return intakeResult{code: code, err: err, message: err.Error()}
}

func (e *Enricher) intake(w http.ResponseWriter, r *http.Request, observe func([]byte)) intakeResult {
	if r.Method != http.MethodPost {
		return refuse(http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed, use POST", r.Method))
	}
	if err := e.opts.Authenticate(r); err != nil {
		res := refuse(http.StatusUnauthorized, err)
		res.message = ErrUnauthenticated.Error() // the reason goes to the log only
		return res
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return refuse(http.StatusUnsupportedMediaType, errors.New("content type must be application/json"))
	}
	if err := e.Ready(r.Context()); err != nil {
		return refuse(http.StatusServiceUnavailable, err)
	}
	tooLarge := refuse(http.StatusRequestEntityTooLarge, fmt.Errorf("batch larger than %d bytes; lower --audit-webhook-batch-max-size", e.opts.MaxRequestBytes))
	if r.ContentLength > e.opts.MaxRequestBytes {
		return tooLarge
	}
	// Bytes in flight: a body of unknown length counts as the largest allowed.
	weight := r.ContentLength
	if weight <= 0 {
		weight = e.opts.MaxRequestBytes
	}
	weight = min(weight, e.opts.MaxInFlightBytes)
	if err := e.inFlightBytes.Acquire(r.Context(), weight); err != nil {
		return refuse(http.StatusServiceUnavailable, fmt.Errorf("no intake capacity free before the request ended: %w", err))
	}
	e.metrics.inFlightBytes.Add(float64(weight))
	defer func() {
		e.metrics.inFlightBytes.Sub(float64(weight))
		e.inFlightBytes.Release(weight)
	}()
	select {
	case e.inFlight <- struct{}{}:
		defer func() { <-e.inFlight }()
	case <-r.Context().Done():
		return refuse(http.StatusServiceUnavailable, fmt.Errorf("no intake slot free before the request ended: %w", r.Context().Err()))
	}

	body := &countingReader{r: http.MaxBytesReader(w, r.Body, e.opts.MaxRequestBytes)}
	sum := sha256.New()
	src := newEventListReader(io.TeeReader(body, sum), e.opts.MaxEventBytes)
	n, dup, err := e.ingest(src, OriginWebhook, func() string { return webhookBatchID(sum) }, nil, observe)
	res := intakeResult{code: http.StatusOK, bytes: body.n, events: n, duplicate: dup}
	var maxBytes *http.MaxBytesError
	switch {
	case err == nil:
		return res
	case errors.As(err, &maxBytes):
		tooLarge.bytes = body.n
		return tooLarge
	case errors.Is(err, ErrSpoolFull):
		e.metrics.spoolFull.Inc()
		res = refuse(http.StatusServiceUnavailable, err)
		res.message = "the spool is full; retry later"
	case errors.Is(err, ErrMalformed), errors.Is(err, errRead):
		res = refuse(http.StatusBadRequest, err)
	default:
		res = refuse(http.StatusInternalServerError, err)
	}
	res.bytes = body.n
	return res
}

// webhookBatchID names a webhook batch by its body, so that a retry gets the same ID.
func webhookBatchID(sum hash.Hash) string {
	return "webhook-" + hex.EncodeToString(sum.Sum(nil)[:16])
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// ingest reads the events of src, masks and packs them into messages and commits them to the
// spool as one batch under the ID id returns (called once src is read). It returns the number
// of events and whether the batch was a duplicate of one still spooled. Nothing is spooled
// unless all of src could be read; a batch without events is not spooled at all.
//
// In JSON-lines mode (the audit log) a line that is not an audit event is reported to badLine
// and skipped.
func (e *Enricher) ingest(src *eventReader, origin string, id func() string, badLine func(offset int64, err error), observe func([]byte)) (int, bool, error) {
	start := time.Now()
	sw, err := e.spool.create()
	if err != nil {
		return 0, false, err
	}
	defer sw.abort() // after commit, nothing
	// masking includes the appends to the spool that packing makes; appending is spooling.
	var appending, masking time.Duration
	p := newPackerWith(e.packers.get(), e.opts.Masker, origin, e.opts.MaxMessageBytes, func(msg []byte) error {
		t := time.Now()
		defer func() { appending += time.Since(t) }()
		return sw.append(msg)
	})
	defer e.packers.put(p.packerBuffers)
	p.observe = observe
	for {
		lineStart := src.offset()
		ev, cut, err := src.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if badLine != nil && errors.Is(err, errSyntax) {
				badLine(lineStart, err)
				continue
			}
			if errors.Is(err, errSyntax) {
				err = fmt.Errorf("%w: %w", ErrMalformed, err)
			}
			return 0, false, err
		}
		t := time.Now()
		err = p.add(ev, cut)
		masking += time.Since(t)
		if err != nil {
			if badLine != nil && errors.Is(err, ErrMalformed) {
				badLine(lineStart, err)
				continue
			}
			return 0, false, err
		}
	}
	if !src.lines {
		if kind, apiVersion := src.typeMeta(); kind != "EventList" || apiVersion != auditAPIVersion {
			return 0, false, fmt.Errorf("%w: got kind %q, apiVersion %q, want EventList, %s", ErrMalformed, kind, apiVersion, auditAPIVersion)
		}
	}
	t := time.Now()
	if err := p.flush(); err != nil {
		return 0, false, err
	}
	masking += time.Since(t)
	if p.events == 0 {
		return 0, false, nil
	}
	t = time.Now()
	dup, err := sw.commit(id())
	spooling := appending + time.Since(t)
	e.metrics.stage(stageMask, masking-appending)
	e.metrics.stage(stageSpool, spooling)
	e.metrics.stage(stageRead, time.Since(start)-(masking-appending)-spooling)
	if err != nil {
		return 0, false, err
	}
	if dup {
		e.metrics.spoolDuplicates.Inc()
		return p.events, true, nil
	}
	e.metrics.events.WithLabelValues(origin).Add(float64(p.events))
	if p.truncated > 0 {
		e.metrics.truncated.Add(float64(p.truncated))
		e.log.Warn("events stored truncated: without their request and response objects, or reduced to metadata", "events", p.truncated, "origin", origin)
	}
	return p.events, false, nil
}

// authenticateClientCert is the default Options.Authenticate: the request came over TLS with a
// client certificate the server verified.
func authenticateClientCert(r *http.Request) error {
	if r.TLS == nil {
		return errors.New("not a TLS connection")
	}
	if len(r.TLS.VerifiedChains) == 0 {
		return errors.New("no verified client certificate")
	}
	return nil
}

// writeStatus answers with a metav1.Status, which kube-apiserver's webhook client logs.
func writeStatus(w http.ResponseWriter, code int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"kind":       "Status",
		"apiVersion": "v1",
		"status":     "Failure",
		"code":       code,
		"reason":     http.StatusText(code),
		"message":    "gatehouse enricher: " + strings.TrimPrefix(message, "enricher: "),
	})
}

// waitTimer waits d or until ctx ends; it reports whether ctx is still live.
func waitTimer(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-wake:
	case <-t.C:
	}
	return true
}
