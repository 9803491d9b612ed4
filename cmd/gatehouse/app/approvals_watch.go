package app

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/gatehouse-dev/gatehouse/approvals"
)

// watch prints the pending requests (every request with all), then each new request and each
// change of state as it happens, until ctx ends. A dropped stream is reopened with backoff;
// what was already printed is not printed again.
func (o *approvalsOptions) watch(ctx context.Context, w io.Writer, c *approvals.Client, all bool) error {
	seen := map[string]approvals.State{}
	header := false
	print := func(ev approvals.WatchEvent) error {
		r := ev.Object
		if r == nil || seen[r.ID] == r.State {
			return nil
		}
		_, known := seen[r.ID]
		seen[r.ID] = r.State
		if !known && !all && r.State != approvals.StatePending {
			return nil
		}
		if o.output != "" {
			return json.NewEncoder(w).Encode(ev)
		}
		if !header {
			header = true
			fmt.Fprintf(w, "%-8s  %-20s  %-9s  %-22s  %-50s  %s\n", "TIME", "ID", "STATE", "REQUESTER", "OPERATION", "RULE")
		}
		_, err := fmt.Fprintf(w, "%-8s  %-20s  %-9s  %-22s  %-50s  %s\n", time.Now().Format("15:04:05"), r.ID, r.State, r.Requester.User,
			describeOperation(r), r.Policy.Policy+"/"+r.Policy.Rule)
		return err
	}
	backoff := wait.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Jitter: 0.2, Steps: 1 << 30, Cap: 15 * time.Second}
	for {
		err := streamApprovals(ctx, c, print)
		if ctx.Err() != nil {
			return nil
		}
		var apiErr *approvals.APIError
		if errors.As(err, &apiErr) && (apiErr.Code == http.StatusUnauthorized || apiErr.Code == http.StatusForbidden) {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff.Step()):
		}
	}
}

// streamApprovals reads the approvals API's watch stream, one JSON event per line.
func streamApprovals(ctx context.Context, c *approvals.Client, fn func(approvals.WatchEvent) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(c.BaseURL, "/")+approvals.APIPrefix+"?watch=true", nil)
	if err != nil {
		return err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("approvals API: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var apiErr approvals.APIError
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(data, &apiErr) == nil && apiErr.Message != "" {
			apiErr.Code = resp.StatusCode
			return &apiErr
		}
		return &approvals.APIError{Code: resp.StatusCode, Reason: resp.Status, Message: "approvals API answered " + resp.Status}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var ev approvals.WatchEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("approvals API: bad watch event: %w", err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	return sc.Err()
}
