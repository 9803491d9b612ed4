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
	"github.com/gatehouse-dev/gatehouse/masking"
)

// maskingOptions load the masking configuration and key, shared by every component that masks.
type maskingOptions struct {
	configFile string
	keyFile    string
}

func (o *maskingOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.configFile, "masking-config", "", "MaskingConfig file (masking.gatehouse.dev/v1alpha1): extra field rules, detectors and exemptions.")
	fs.StringVar(&o.keyFile, "masking-key-file", "", "File holding the HMAC key of masked-value placeholders (at least 16 bytes). Keep it stable: placeholders stay comparable across restarts and replicas.")
}

// masker builds the Masker, and the Fingerprinter of approvals with the same key. Without a key
// file, dev mode gets a random key; otherwise it is an error.
func (o *maskingOptions) masker(dev bool, log *slog.Logger) (*masking.Masker, *approvals.Fingerprinter, error) {
	var cfg masking.Config
	if o.configFile != "" {
		var err error
		if cfg, err = masking.LoadConfig(o.configFile); err != nil {
			return nil, nil, err
		}
	}
	switch {
	case o.keyFile != "":
		key, err := os.ReadFile(o.keyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("--masking-key-file: %w", err)
		}
		cfg.Key = []byte(strings.TrimRight(string(key), " \t\r\n"))
	case len(cfg.Key) > 0:
	case dev:
		cfg.Key = make([]byte, 32)
		_, _ = rand.Read(cfg.Key)
		log.Warn("no --masking-key-file: using a random key (development only); placeholders change at every start")
	default:
		return nil, nil, errors.New("--masking-key-file is required (or keyFile in --masking-config)")
	}
	m, err := masking.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	fp, err := approvals.NewFingerprinter(cfg.Key)
	if err != nil {
		return nil, nil, err
	}
	return m, fp, nil
}
