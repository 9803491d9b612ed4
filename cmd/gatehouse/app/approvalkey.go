package app

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/gatehouse-dev/gatehouse/approvals"
)

// approvalKeyOptions load the approval key: the HMAC key that authenticates approval requests,
// decisions and grant uses in NATS, held by the webhook and the console only.
type approvalKeyOptions struct {
	file string
}

func (o *approvalKeyOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.file, "approval-key-file", "", fmt.Sprintf("File holding the approval key (at least %d bytes): the HMAC key that authenticates approval requests, decisions and the use of grants stored in NATS. The same on the webhook and the console, and nowhere else: not the masking key, never given to NATS or the proxy. Required, except with --dev (then random).", approvals.MinKeyBytes))
}

func (o *approvalKeyOptions) validate(dev bool) error {
	if o.file == "" && !dev {
		return errors.New("--approval-key-file is required (the webhook and the console share it; only --dev makes a random one)")
	}
	return nil
}

// key reads the approval key, or makes a random one in development mode.
func (o *approvalKeyOptions) key(log *slog.Logger) ([]byte, error) {
	if o.file == "" {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		log.Warn("no --approval-key-file: using a random approval key (development only); requests made before a restart fail their integrity check")
		return key, nil
	}
	data, err := os.ReadFile(o.file)
	if err != nil {
		return nil, fmt.Errorf("--approval-key-file: %w", err)
	}
	key := []byte(strings.TrimRight(string(data), " \t\r\n"))
	if len(key) < approvals.MinKeyBytes {
		return nil, fmt.Errorf("--approval-key-file: the key has %d bytes; it needs at least %d (e.g. head -c 32 /dev/urandom | base64)", len(key), approvals.MinKeyBytes)
	}
	return key, nil
}
