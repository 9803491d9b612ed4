package masking

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"
)

// ConfigAPIVersion and ConfigKind identify a masking configuration file.
const (
	ConfigAPIVersion = "masking.gatehouse.dev/v1alpha1"
	ConfigKind       = "MaskingConfig"
)

// MinKeyLen is the minimum length of the HMAC key in bytes.
const MinKeyLen = 16

// Defaults of Limits.
const (
	DefaultMaxBodyBytes  = 256 << 20
	DefaultMaxEventBytes = 16 << 20
	DefaultMaxLineBytes  = 64 << 10
)

// Config configures a Masker. The zero value with a Key set is a working configuration: the
// built-in rules and detectors with the default limits.
type Config struct {
	// APIVersion must be ConfigAPIVersion in a file; New ignores it.
	APIVersion string `json:"apiVersion,omitempty"`
	// Kind must be ConfigKind in a file; New ignores it.
	Kind string `json:"kind,omitempty"`

	// Key is the HMAC key placeholders are computed with, at least MinKeyLen bytes. Keep it
	// secret and stable: with it, a placeholder can be checked against a guessed value, and a
	// new key changes every placeholder. It is never read from or written to the YAML itself.
	Key Key `json:"-"`
	// KeyFile names a file holding the key, read by LoadConfig when Key is empty. A relative
	// path is relative to the configuration file. Trailing white space is removed.
	KeyFile string `json:"keyFile,omitempty"`

	// Rules mask fields of operator-defined types.
	Rules []FieldRule `json:"rules,omitempty"`
	// Detectors are additional detectors for free text and string values.
	Detectors []DetectorSpec `json:"detectors,omitempty"`
	// Exemptions turn detectors off for some objects, keys or everywhere.
	Exemptions []Exemption `json:"exemptions,omitempty"`
	// Limits bound the memory the Masker uses per body and stream.
	Limits Limits `json:"limits,omitempty"`
}

// Key is an HMAC key. It formats as "[redacted]" so that logging a Config cannot leak it.
type Key []byte

// String returns "[redacted]".
func (Key) String() string { return "[redacted]" }

// GoString returns "[redacted]".
func (Key) GoString() string { return "[redacted]" }

// Format writes "[redacted]" for every verb.
func (Key) Format(f fmt.State, _ rune) { fmt.Fprint(f, "[redacted]") }

// LogValue returns "[redacted]" for log/slog.
func (Key) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// FieldRule masks fields of one type wholesale, like Secret data.
type FieldRule struct {
	// Name identifies the rule in Stats. It must not be the name of a detector or another rule.
	Name string `json:"name"`
	// Group is the API group of the type ("" for the core group).
	Group string `json:"group,omitempty"`
	// Kind is the kind of the type, e.g. DatabaseCredential.
	Kind string `json:"kind"`
	// Resource is the resource the type is served as, used when a request or an audit event
	// names the resource and the object does not name its kind. Default: the lower-case kind
	// made plural the way Kubernetes guesses it (DatabaseCredential -> databasecredentials).
	Resource string `json:"resource,omitempty"`
	// Paths are the fields to mask, dot-separated from the object's root: spec.password,
	// spec.connection.* (every member of spec.connection). A "*" segment matches any key or
	// array index; a key with dots is written in brackets: metadata.annotations[example.com/pw].
	// When a path names an object or an array, every string and number below it is masked.
	Paths []string `json:"paths"`
}

// DetectorSpec defines a custom detector.
type DetectorSpec struct {
	// Name identifies the detector in Stats and Exemptions.
	Name string `json:"name"`
	// Regex is an RE2 expression (Go regexp syntax). The secret is the submatch named
	// "secret" if there is one, else the first submatch if there is one, else the whole match.
	Regex string `json:"regex"`
	// Keywords make the detector run only on texts that contain one of them (compared without
	// regard to case). Without keywords it runs on every text, which costs time on every
	// string of every response: prefer keywords.
	Keywords []string `json:"keywords,omitempty"`
	// MinEntropy is the minimum Shannon entropy of the secret in bits per byte; 0 disables
	// the check.
	MinEntropy float64 `json:"minEntropy,omitempty"`
}

// Exemption turns detectors off. An exemption with no selector (Group, Kind, Namespace, Name,
// Keys) applies everywhere; otherwise it applies to string values of matching objects whose key
// (object member name, environment variable name, ConfigMap key) is one of Keys.
type Exemption struct {
	// Group matches the API group of the object; "core" is the core group; empty matches any.
	Group string `json:"group,omitempty"`
	// Kind matches the object's kind; empty matches any.
	Kind string `json:"kind,omitempty"`
	// Namespace matches metadata.namespace; empty matches any.
	Namespace string `json:"namespace,omitempty"`
	// Name matches metadata.name; empty matches any.
	Name string `json:"name,omitempty"`
	// Keys match the key of the value; empty matches any.
	Keys []string `json:"keys,omitempty"`
	// Detectors are the detectors turned off; empty means all detectors and keyword rules.
	// secret-data and secret-string-data may be listed only together with Kind Secret and
	// Keys, to show public values such as ca.crt; other structural rules cannot be exempted.
	Detectors []string `json:"detectors,omitempty"`
}

// Limits bound the memory the Masker uses. Zero fields take their defaults.
type Limits struct {
	// MaxBodyBytes bounds a decompressed body and a JSON response read by Stream. Default:
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64 `json:"maxBodyBytes,omitempty"`
	// MaxEventBytes bounds one watch event, and the buffer a watch stream grows to. Default:
	// DefaultMaxEventBytes.
	MaxEventBytes int `json:"maxEventBytes,omitempty"`
	// MaxLineBytes bounds the line buffer of text streams and the private key block they
	// hold back; longer lines are masked in chunks, longer blocks replaced whole. Default:
	// DefaultMaxLineBytes; at least 16 KiB.
	MaxLineBytes int `json:"maxLineBytes,omitempty"`
	// ItemCacheBytes bounds the memory that remembers how the items of lists read whole were
	// masked, so that an object that did not change is not masked again when a client reads it
	// again. The cache keeps hashes of the objects' bytes and what replaced parts of them in
	// what clients were sent, never a value masking hid; a Secret taken from it passes its
	// values to the Target's SecretValue hook read from the response. Default:
	// DefaultItemCacheBytes; negative turns the cache off.
	ItemCacheBytes int64 `json:"itemCacheBytes,omitempty"`
}

func (l *Limits) setDefaults() {
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if l.MaxEventBytes <= 0 {
		l.MaxEventBytes = DefaultMaxEventBytes
	}
	if l.MaxLineBytes <= 0 {
		l.MaxLineBytes = DefaultMaxLineBytes
	}
	if l.ItemCacheBytes == 0 {
		l.ItemCacheBytes = DefaultItemCacheBytes
	}
	if l.MaxLineBytes < 4*lineOverlap {
		l.MaxLineBytes = 4 * lineOverlap
	}
}

// LoadConfig reads a MaskingConfig from a YAML or JSON file and, when the file names a KeyFile,
// the key from that file. Unknown fields are errors.
func LoadConfig(path string) (Config, error) {
	var cfg Config
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		return cfg, fmt.Errorf("%w: %s: %w", ErrInvalidConfig, path, err)
	}
	if cfg.APIVersion != ConfigAPIVersion || cfg.Kind != ConfigKind {
		return cfg, fmt.Errorf("%w: %s: want apiVersion %s and kind %s", ErrInvalidConfig, path, ConfigAPIVersion, ConfigKind)
	}
	if cfg.KeyFile != "" {
		kf := cfg.KeyFile
		if !filepath.IsAbs(kf) {
			kf = filepath.Join(filepath.Dir(path), kf)
		}
		key, err := os.ReadFile(kf)
		if err != nil {
			// The path is configuration, not key material.
			return cfg, fmt.Errorf("%w: reading key file: %w", ErrInvalidConfig, err)
		}
		cfg.Key = bytes.TrimRight(key, " \t\r\n")
	}
	return cfg, nil
}

// guessResource returns the resource name Kubernetes guesses for a kind, as
// k8s.io/apimachinery's UnsafeGuessKindToResource does.
func guessResource(kind string) string {
	k := strings.ToLower(kind)
	switch {
	case k == "":
		return ""
	case strings.HasSuffix(k, "s"):
		return k + "es"
	case strings.HasSuffix(k, "y") && len(k) > 1 && !strings.ContainsRune("aeiou", rune(k[len(k)-2])):
		return k[:len(k)-1] + "ies"
	}
	return k + "s"
}

// parsePath splits a field path into segments.
func parsePath(p string) ([]string, error) {
	var segs []string
	cur := strings.Builder{}
	flush := func() {
		if cur.Len() > 0 {
			segs = append(segs, cur.String())
			cur.Reset()
		}
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '.':
			if cur.Len() == 0 && (i == 0 || p[i-1] != ']') {
				return nil, fmt.Errorf("empty segment in path %q", p)
			}
			flush()
		case '[':
			flush()
			j := strings.IndexByte(p[i:], ']')
			if j < 2 {
				return nil, fmt.Errorf("bad bracket in path %q", p)
			}
			segs = append(segs, p[i+1:i+j])
			i += j
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	if len(segs) == 0 {
		return nil, fmt.Errorf("empty path")
	}
	return segs, nil
}

// compileDetector builds a detector from a spec.
func compileDetector(id int, s DetectorSpec) (*detector, error) {
	re, err := regexp.Compile(s.Regex)
	if err != nil {
		return nil, fmt.Errorf("detector %q: %w", s.Name, err)
	}
	group := 0
	if g := re.SubexpIndex("secret"); g > 0 {
		group = g
	} else if re.NumSubexp() > 0 {
		group = 1
	}
	d := &detector{id: id, re: re, group: group, minEntropy: s.MinEntropy}
	for _, k := range s.Keywords {
		if k == "" {
			return nil, fmt.Errorf("detector %q: empty keyword", s.Name)
		}
		d.keywords = append(d.keywords, strings.ToLower(k))
	}
	if re.Match(nil) {
		return nil, fmt.Errorf("detector %q: the expression matches the empty text", s.Name)
	}
	return d, nil
}

// exemption is an Exemption with detector names resolved.
type exemption struct {
	group     *string // nil: any
	kind      string
	namespace string
	name      string
	keys      []string
	ids       []bool // by ID; nil: all detectors and keyword rules
}

// matches reports whether e applies to a value named key in object st (nil: none) and
// detector id (-1: all).
func (e *exemption) matches(st *objState, key []byte, id int) bool {
	if e.ids == nil {
		if isStructuralRule(id) {
			return false // structural rules are exempted only by name
		}
	} else if id < 0 || !e.ids[id] {
		return false
	}
	return e.selects(st, key)
}

// selects reports whether e selects a value named key in object st (nil: none).
func (e *exemption) selects(st *objState, key []byte) bool {
	if len(e.keys) > 0 {
		found := false
		for _, k := range e.keys {
			if string(key) == k {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	if e.group == nil && e.kind == "" && e.namespace == "" && e.name == "" {
		return true
	}
	if st == nil {
		return false
	}
	if e.group != nil && (st.t.group == nil || string(st.t.group) != *e.group) {
		return false
	}
	if e.kind != "" && string(st.t.kind) != e.kind {
		return false
	}
	if e.namespace != "" && string(st.namespace) != e.namespace {
		return false
	}
	return e.name == "" || string(st.name) == e.name
}

// exempt reports whether an exemption turns detector id (-1: all of them) off for the value in
// context c.
func (w *walker) exempt(c vctx, id int) bool {
	var st *objState
	if c.obj >= 0 {
		st = &w.objs[c.obj]
	}
	for i := range w.m.exemptions {
		if w.m.exemptions[i].matches(st, c.key, id) {
			return true
		}
	}
	return false
}

// exemptsSome reports whether an exemption turns some detectors off for the value in context
// c.
func (w *walker) exemptsSome(c vctx) bool {
	var st *objState
	if c.obj >= 0 {
		st = &w.objs[c.obj]
	}
	for i := range w.m.exemptions {
		e := &w.m.exemptions[i]
		if e.ids != nil && e.selects(st, c.key) {
			return true
		}
	}
	return false
}

// filterExempt drops the spans whose detector is exempted in context c.
func (w *walker) filterExempt(c vctx, spans []span) []span {
	n := 0
	for _, s := range spans {
		if !w.exempt(c, s.id) {
			spans[n] = s
			n++
		}
	}
	return spans[:n]
}
