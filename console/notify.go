package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/gatehouse-dev/gatehouse/approvals"
)

// Notification formats.
const (
	// FormatSlack is a Slack incoming-webhook message ({"text": ...}); Mattermost, Rocket.Chat
	// and others accept it too.
	FormatSlack = "slack"
	// FormatJSON is Notification as JSON.
	FormatJSON = "json"
)

// Webhook is an outgoing webhook the console notifies.
type Webhook struct {
	// URL receives a POST per notification. It is a credential for most chat services: it is
	// never logged.
	URL string
	// Format is FormatSlack or FormatJSON.
	Format string
}

// Notification is what a webhook is told: a summary that never carries an object, a secret or
// anything the approvers' own pages do not show. Free text in it (messages, reasons) was masked
// when it was stored.
type Notification struct {
	// Event is requested, voted, approved, denied or expired.
	Event       string    `json:"event"`
	ApprovalID  string    `json:"approvalID"`
	URL         string    `json:"url"`
	State       string    `json:"state"`
	Requester   string    `json:"requester"`
	SessionID   string    `json:"sessionID,omitempty"`
	Operation   string    `json:"operation"`
	Target      string    `json:"target,omitempty"`
	Policy      string    `json:"policy"`
	Rule        string    `json:"rule"`
	Message     string    `json:"message,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	Approvals   int       `json:"approvals"`
	Required    int       `json:"required"`
	Expires     time.Time `json:"expires"`
	Actor       string    `json:"actor,omitempty"`
	ActorReason string    `json:"actorReason,omitempty"`
}

// Notifier posts notifications of new approval requests and decisions to webhooks, retrying
// with backoff; a webhook that stays unreachable loses that notification (logged), never the
// console's work.
type Notifier struct {
	Webhooks []Webhook
	// RequestURL returns the console link of a request. Set by the console.
	RequestURL func(id string) string
	// Client posts. Default: 10s timeout.
	Client *http.Client
	// Backoff between attempts. Default: 1s doubling, 5 attempts.
	Backoff wait.Backoff
	Logger  *slog.Logger

	queue chan Notification
}

// NewNotifier returns a Notifier for webhooks.
func NewNotifier(webhooks []Webhook, log *slog.Logger) (*Notifier, error) {
	for _, h := range webhooks {
		if h.Format != FormatSlack && h.Format != FormatJSON {
			return nil, fmt.Errorf("%w: notification format must be %s or %s, not %q", ErrInvalidOption, FormatSlack, FormatJSON, h.Format)
		}
		if !strings.HasPrefix(h.URL, "https://") && !strings.HasPrefix(h.URL, "http://") {
			return nil, fmt.Errorf("%w: a notification webhook needs an http(s) URL", ErrInvalidOption)
		}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Notifier{Webhooks: webhooks, Client: &http.Client{Timeout: 10 * time.Second},
		Backoff: wait.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.1, Steps: 5}, Logger: log,
		queue: make(chan Notification, 1024)}, nil
}

// observe turns a change into a notification: a new request, a vote, a decision, an expiry.
func (n *Notifier) observe(prev, cur *item) {
	var event string
	switch {
	case prev == nil && cur.State == approvals.StatePending:
		event = "requested"
	case prev == nil || prev.State == cur.State && len(prev.Decisions) == len(cur.Decisions):
		return
	case cur.State == approvals.StateApproved && prev.State == approvals.StatePending:
		event = "approved"
	case cur.State == approvals.StateDenied:
		event = "denied"
	case cur.State == approvals.StateExpired && prev.State == approvals.StatePending:
		event = "expired"
	case cur.State == approvals.StatePending && len(cur.Decisions) > len(prev.Decisions):
		event = "voted"
	default:
		return // a grant used or expired: not news for approvers
	}
	op := cur.Operation
	res := op.Resource
	if op.APIGroup != "" {
		res += "." + op.APIGroup
	}
	if op.Subresource != "" {
		res += "/" + op.Subresource
	}
	target := op.Name
	if op.Namespace != "" {
		target = op.Namespace + "/" + op.Name
	}
	msg := Notification{
		Event: event, ApprovalID: cur.ID, State: string(cur.State), Requester: cur.Requester.User,
		SessionID: cur.SessionID, Operation: strings.ToLower(op.Verb) + " " + res, Target: target,
		Policy: cur.Policy.Policy, Rule: cur.Policy.Rule, Message: cur.Policy.Message, Reason: cur.Reason,
		Approvals: len(cur.Approvers()), Required: cur.Required, Expires: cur.Expires,
	}
	if n.RequestURL != nil {
		msg.URL = n.RequestURL(cur.ID)
	}
	if len(cur.Decisions) > 0 && len(cur.Decisions) > len(prev.decisions()) {
		d := cur.Decisions[len(cur.Decisions)-1]
		msg.Actor, msg.ActorReason = d.Approver, d.Reason
	}
	select {
	case n.queue <- msg:
	default:
		n.Logger.Error("notification queue full; notification dropped", "approval", cur.ID, "event", event)
	}
}

func (it *item) decisions() []approvals.Decision {
	if it == nil {
		return nil
	}
	return it.Decisions
}

func (n *Notifier) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case msg := <-n.queue:
			for _, h := range n.Webhooks {
				if err := n.send(ctx, h, msg); err != nil {
					n.Logger.Error("notification not delivered", "approval", msg.ApprovalID, "event", msg.Event, "format", h.Format, "err", err)
				}
			}
		}
	}
}

// errPermanent stops retries: the webhook refused the message itself.
var errPermanent = errors.New("refused")

func (n *Notifier) send(ctx context.Context, h Webhook, msg Notification) error {
	body, err := encode(h.Format, msg)
	if err != nil {
		return err
	}
	var last error
	err = wait.ExponentialBackoffWithContext(ctx, n.Backoff, func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
		if err != nil {
			return false, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "gatehouse-console")
		resp, err := n.Client.Do(req)
		if err != nil {
			// The error names the URL, a credential: keep only that it failed.
			last = errors.New("webhook unreachable")
			return false, nil
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		switch {
		case resp.StatusCode < 300:
			return true, nil
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
			last = fmt.Errorf("webhook answered %d", resp.StatusCode)
			return false, nil
		}
		return false, fmt.Errorf("%w: webhook answered %d", errPermanent, resp.StatusCode)
	})
	if wait.Interrupted(err) && last != nil {
		return last
	}
	return err
}

func encode(format string, msg Notification) ([]byte, error) {
	if format == FormatJSON {
		return json.Marshal(msg)
	}
	var verb string
	switch msg.Event {
	case "requested":
		verb = "needs approval"
	case "voted":
		verb = fmt.Sprintf("has %d of %d approvals", msg.Approvals, msg.Required)
	default:
		verb = "was " + msg.Event
	}
	text := fmt.Sprintf("Approval request <%s|%s> %s: %s %s by %s (rule %s/%s).", msg.URL, msg.ApprovalID, verb,
		msg.Operation, msg.Target, msg.Requester, msg.Policy, msg.Rule)
	if msg.Reason != "" {
		text += "\nReason: " + msg.Reason
	}
	if msg.Actor != "" {
		text += "\n" + msg.Actor + ": " + msg.ActorReason
	}
	return json.Marshal(map[string]string{"text": slackEscape(text)})
}

// slackEscape escapes what Slack's mrkdwn would read as markup in user-supplied text, keeping
// the one link built above.
func slackEscape(s string) string {
	// The link is the only <...> sequence the message itself writes; everything else is text.
	start := strings.Index(s, "<")
	end := strings.Index(s, ">")
	if start < 0 || end < start {
		return s
	}
	esc := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
	return esc.Replace(s[:start]) + s[start:end+1] + esc.Replace(s[end+1:])
}
