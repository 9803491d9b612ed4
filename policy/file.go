package policy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// FileWatcher loads AccessPolicies from a file into an Engine, for dev mode, and reloads them
// whenever the file's content changes. It is a controller-runtime Runnable.
type FileWatcher struct {
	// Path is the multi-document YAML file (see LoadFile). Required.
	Path string
	// Engine receives the policies. Required.
	Engine *Engine
	// Interval is how often the file is checked for changes. Default 1s.
	Interval time.Duration
	// Logger reports reloads, compile errors and unreadable files. Default: discard.
	Logger *slog.Logger

	last, lastFailed []byte
}

// Load reads the file and, when its content differs from the last load, sets the engine's
// policies. An unreadable or unparsable file leaves the engine as it was. Policies that do not
// compile are logged, and also returned as one joined error.
func (w *FileWatcher) Load() error {
	if w.Logger == nil {
		w.Logger = slog.New(slog.DiscardHandler)
	}
	data, err := os.ReadFile(w.Path)
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	if (w.last != nil && bytes.Equal(data, w.last)) || (w.lastFailed != nil && bytes.Equal(data, w.lastFailed)) {
		return nil
	}
	policies, err := Load(bytes.NewReader(data))
	if err != nil {
		// Reported once per content, not on every check.
		w.lastFailed = data
		return fmt.Errorf("policy: %s: %w", w.Path, err)
	}
	w.last, w.lastFailed = data, nil
	compileErrs := w.Engine.SetPolicies(policies)
	w.Logger.Info("access policies loaded from file", "path", w.Path, "policies", len(policies),
		"invalid", len(compileErrs), "generation", w.Engine.Generation())
	errs := make([]error, 0, len(compileErrs))
	for _, p := range policies {
		if err := compileErrs[p.Name]; err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Start loads the file, failing when it cannot be read or parsed, then reloads it on change
// until ctx ends. Later failures are logged and the policies in force stay.
func (w *FileWatcher) Start(ctx context.Context) error {
	if w.Path == "" || w.Engine == nil {
		return errors.New("policy: FileWatcher needs Path and Engine")
	}
	if w.Interval <= 0 {
		w.Interval = time.Second
	}
	if err := w.Load(); err != nil && !errors.Is(err, ErrInvalidPolicy) {
		return err
	}
	t := time.NewTicker(w.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := w.Load(); err != nil && !errors.Is(err, ErrInvalidPolicy) {
				w.Logger.Error("reloading access policies failed; the policies in force stay", "path", w.Path, "err", err)
			}
		}
	}
}

// NeedLeaderElection implements controller-runtime's LeaderElectionRunnable: every replica
// needs the policies.
func (w *FileWatcher) NeedLeaderElection() bool { return false }
