package approvals

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// ConsoleHeader names, in the proxy's answer to a call of the approvals API (which it does not
// serve), the URL of the console that serves it.
const ConsoleHeader = "Gatehouse-Console"

// DiscoverConsole asks the proxy at proxyURL, with hc (the caller's credentials), where the
// console that serves the approvals API is: the proxy answers calls of the API with the
// console's URL in ConsoleHeader.
func DiscoverConsole(ctx context.Context, hc *http.Client, proxyURL string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(proxyURL, "/")+APIPrefix, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("asking the proxy at %s where the console is: %w", proxyURL, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	console := resp.Header.Get(ConsoleHeader)
	if console == "" {
		return "", fmt.Errorf("the proxy at %s does not say where gatehouse console serves the approvals API (it answered %s): give the console's URL with --console or GATEHOUSE_CONSOLE", proxyURL, resp.Status)
	}
	u, err := url.Parse(console)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("the proxy at %s names %q as the console, which is not an https URL", proxyURL, console)
	}
	return console, nil
}

// Client calls the approvals API.
type Client struct {
	// BaseURL is the console's URL, e.g. https://gatehouse-console.example.com.
	BaseURL string
	// HTTP carries the caller's bearer token: the console verifies it as the proxy does, so the
	// credentials of a kubeconfig that reaches the proxy do.
	HTTP *http.Client
}

// List returns the requests in state (all when empty).
func (c *Client) List(ctx context.Context, state State) ([]*Request, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", string(state))
	}
	var out ListResponse
	err := c.do(ctx, http.MethodGet, APIPrefix+"?"+q.Encode(), nil, &out)
	return out.Items, err
}

// Get returns one request.
func (c *Client) Get(ctx context.Context, id string) (*Request, error) {
	var out Request
	return &out, c.do(ctx, http.MethodGet, APIPrefix+"/"+url.PathEscape(id), nil, &out)
}

// Decide approves or denies a request.
func (c *Client) Decide(ctx context.Context, id string, v Verdict, reason string) (*Request, error) {
	var out Request
	action := "approve"
	if v == Deny {
		action = "deny"
	}
	return &out, c.do(ctx, http.MethodPost, APIPrefix+"/"+url.PathEscape(id)+"/"+action, DecisionBody{Reason: reason}, &out)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("approvals API: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("approvals API: %w", err)
	}
	if resp.StatusCode >= 300 {
		var apiErr APIError
		if json.Unmarshal(data, &apiErr) == nil && apiErr.Message != "" {
			return &apiErr
		}
		return &APIError{Code: resp.StatusCode, Reason: resp.Status, Message: fmt.Sprintf("approvals API answered %s", resp.Status)}
	}
	return json.Unmarshal(data, out)
}
