package serving

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Run serves srv on l until ctx ends, then shuts it down gracefully, waiting up to grace for
// requests in flight. With tlsCfg it serves HTTPS. It returns nil after a shutdown caused by ctx.
func Run(ctx context.Context, srv *http.Server, l net.Listener, tlsCfg *tls.Config, grace time.Duration) error {
	if srv.ReadHeaderTimeout == 0 {
		// Slowloris: a client must send its headers promptly. Bodies and streams are not bounded
		// here; long-lived watches and exec sessions are legitimate.
		srv.ReadHeaderTimeout = 10 * time.Second
	}
	if tlsCfg != nil {
		l = tls.NewListener(l, tlsCfg)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve on %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		// Streams that outlive the grace period are cut.
		err = srv.Close()
	}
	<-errc
	return err
}

// Server is an HTTP server as a controller-runtime Runnable: from Start until its context ends it
// serves on Listener (HTTPS with TLS), then shuts down as Run does. Every replica runs it: it
// needs no leader election.
type Server struct {
	Server   *http.Server
	Listener net.Listener
	// TLS, when set, makes it serve HTTPS.
	TLS *tls.Config
	// ShutdownGrace is how long requests in flight may finish once its context ended.
	ShutdownGrace time.Duration
}

// Start serves until ctx ends (Run).
func (s *Server) Start(ctx context.Context) error {
	return Run(ctx, s.Server, s.Listener, s.TLS, s.ShutdownGrace)
}

// NeedLeaderElection is false: every replica serves.
func (s *Server) NeedLeaderElection() bool { return false }

// Probes returns the Runnable that serves h's /healthz and /readyz and metrics' /metrics on l
// (plain HTTP). It is a controller-runtime manager.Server, which a manager starts before its
// caches and stops after every other part, as it does its own health probes: a slow start is
// not taken for a dead process, and a stopping one still answers.
func Probes(l net.Listener, h *Health, metrics prometheus.Gatherer) manager.Runnable {
	mux := http.NewServeMux()
	h.Install(mux)
	mux.Handle("GET /metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{}))
	grace := time.Second
	return &manager.Server{
		Name:            "health and metrics",
		Server:          &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		Listener:        l,
		ShutdownTimeout: &grace,
	}
}

// Health serves /healthz (the process is alive) and /readyz (every registered check passes), in
// the manner of kube-apiserver: 200 "ok", or 503 naming the failed checks. Check details go to the
// log, not to the response.
type Health struct {
	log *slog.Logger

	mu     sync.RWMutex
	checks map[string]func(context.Context) error
}

// NewHealth returns a Health reporting failures to log.
func NewHealth(log *slog.Logger) *Health {
	return &Health{log: log, checks: map[string]func(context.Context) error{}}
}

// AddReadyCheck registers a readiness check under name.
func (h *Health) AddReadyCheck(name string, check func(context.Context) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks[name] = check
}

// Install registers /healthz and /readyz on mux.
func (h *Health) Install(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok"))
	})
	mux.HandleFunc("GET /readyz", h.serveReady)
}

func (h *Health) serveReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	h.mu.RLock()
	defer h.mu.RUnlock()
	var failed []string
	for name, check := range h.checks {
		if err := check(ctx); err != nil {
			h.log.Warn("readiness check failed", "check", name, "err", err)
			failed = append(failed, name)
		}
	}
	if len(failed) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, "not ready: %v", failed)
		return
	}
	_, _ = w.Write([]byte("ok"))
}
