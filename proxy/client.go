package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gatehouse-dev/gatehouse/approvals"
)

// A client chooses how Gatehouse treats its requests with options, in either of two equivalent
// forms: headers, or a prefix of the request path that a kubeconfig can carry in its server URL,
// which the proxy strips before it does anything else:
//
//	https://<proxy>/gatehouse/client/<key>=<value>[,<key>=<value>...]/api/...
//
// Values in the path are URL-escaped (reason=fix%20the%20build). A value may contain commas: an
// option ends only at a comma followed by another key and "=". It cannot contain "/", which
// clients such as kubectl unescape before they send the path. A key given both ways must have
// the same value.
//
//	key      header               value
//	session  Gatehouse-Session    a label naming the client's run (see sessionID)
//	hold     Gatehouse-Hold       what happens when admission holds the request for approval:
//	                              wait (the default) holds the call until approvers decide, up to
//	                              the proxy's limit; refuse answers at once with the approval
//	                              request's ID, rule, approvers and the commands to approve and
//	                              retry; a Go duration (90s, 5m) holds it at most that long
//	                              (never longer than the proxy's limit)
//	reason   Gatehouse-Reason     why the request is needed, shown to approvers (masked)
const ClientPathPrefix = "/gatehouse/client/"

// Headers of the client options, and SessionHeader, the response header naming the session ID
// the proxy used.
const (
	SessionHeader = "Gatehouse-Session"
	HoldHeader    = "Gatehouse-Hold"
	ReasonHeader  = "Gatehouse-Reason"
)

// Hold modes.
const (
	HoldWait   = "wait"
	HoldRefuse = "refuse"
)

// optionHeaders maps each client option to its header.
var optionHeaders = map[string]string{"session": SessionHeader, "hold": HoldHeader, "reason": ReasonHeader}

var sessionLabel = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ErrClientOptions is wrapped by every error about a client's options.
var ErrClientOptions = errors.New("invalid Gatehouse client options")

// clientOptions are what a client chose for a request.
type clientOptions struct {
	// session is the client's session label; empty means the token defines the session.
	session string
	// refuse asks for an immediate answer when the request is held; otherwise the call waits,
	// at most holdFor when that is set.
	refuse  bool
	holdFor time.Duration
	// reason is why the client says the request is needed.
	reason string
}

// holdLimit is how long a call with these options is held at most, given the proxy's limit.
func (o clientOptions) holdLimit(max time.Duration) time.Duration {
	if o.holdFor > 0 && o.holdFor < max {
		return o.holdFor
	}
	return max
}

// readClientOptions reads a request's client options from its path prefix, which it strips from
// r.URL, and from its headers. It is the one parser of both forms.
func readClientOptions(r *http.Request) (clientOptions, error) {
	values := map[string]string{}
	if rest, ok := strings.CutPrefix(r.URL.EscapedPath(), ClientPathPrefix); ok {
		segment, tail, _ := strings.Cut(rest, "/")
		if err := parseOptionSegment(segment, values); err != nil {
			return clientOptions{}, err
		}
		escaped := "/" + tail
		path, err := url.PathUnescape(escaped)
		if err != nil {
			return clientOptions{}, fmt.Errorf("%w: the path after the options: %w", ErrClientOptions, err)
		}
		r.URL.Path, r.URL.RawPath = path, escaped
	}
	for key, header := range optionHeaders {
		v := r.Header.Get(header)
		if v == "" {
			continue
		}
		if pv, ok := values[key]; ok && pv != v {
			return clientOptions{}, fmt.Errorf("%w: %s is %q in the server URL and %q in the %s header", ErrClientOptions, key, pv, v, header)
		}
		values[key] = v
	}
	return newClientOptions(values)
}

// parseOptionSegment parses "k=v,k=v" with URL-escaped values into values.
func parseOptionSegment(segment string, values map[string]string) error {
	if segment == "" {
		return nil
	}
	for _, kv := range splitOptions(segment) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("%w: %q in the server URL is not key=value", ErrClientOptions, kv)
		}
		if _, dup := values[k]; dup {
			return fmt.Errorf("%w: %s is given twice in the server URL", ErrClientOptions, k)
		}
		unescaped, err := url.PathUnescape(v)
		if err != nil {
			return fmt.Errorf("%w: the value of %s in the server URL: %w", ErrClientOptions, k, err)
		}
		values[k] = unescaped
	}
	return nil
}

// splitOptions splits "k=v,k=v" at the commas that are followed by a known key and "=", so that
// a value may hold commas (kubectl sends an escaped comma unescaped).
func splitOptions(segment string) []string {
	var out []string
	start := 0
	for i := 0; i < len(segment); i++ {
		if segment[i] != ',' {
			continue
		}
		rest := segment[i+1:]
		for key := range optionHeaders {
			if strings.HasPrefix(rest, key+"=") {
				out = append(out, segment[start:i])
				start = i + 1
				break
			}
		}
	}
	return append(out, segment[start:])
}

func newClientOptions(values map[string]string) (clientOptions, error) {
	var o clientOptions
	for k, v := range values {
		switch k {
		case "session":
			if !sessionLabel.MatchString(v) {
				return o, fmt.Errorf("%w: the session (%s) must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", ErrClientOptions, SessionHeader)
			}
			o.session = v
		case "hold":
			switch v {
			case HoldWait:
			case HoldRefuse:
				o.refuse = true
			default:
				d, err := time.ParseDuration(v)
				if err != nil || d <= 0 {
					return o, fmt.Errorf("%w: hold (%s) must be %s, %s or a positive duration such as 90s, not %q", ErrClientOptions, HoldHeader, HoldWait, HoldRefuse, v)
				}
				o.holdFor = d
			}
		case "reason":
			if len(v) > approvals.MaxReasonLength || !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) {
				return o, fmt.Errorf("%w: the reason (%s) must be at most %d bytes of text without control characters", ErrClientOptions, ReasonHeader, approvals.MaxReasonLength)
			}
			o.reason = v
		default:
			return o, fmt.Errorf("%w: unknown option %q (known: session, hold, reason)", ErrClientOptions, k)
		}
	}
	return o, nil
}
