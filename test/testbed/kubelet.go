package testbed

import (
	"context"
	"fmt"

	"github.com/gatehouse-dev/gatehouse/devnode"
)

// Kubelet is the development node (package devnode) registered with the test bed's API
// server: exec, attach, port-forward and container logs work end to end over SPDY and
// WebSocket with the kubelet's own streaming code. Exec and attach run devnode's built-in
// shell over an in-memory filesystem, never the test machine's programs; port-forward reaches
// an in-memory server per pod port that echoes what it is sent (and answers HTTP). Logs are
// what the test appended with AppendLog.
type Kubelet struct {
	*devnode.Node
	// NodeName is the name of the Node the stub is registered as.
	NodeName string
}

// StartKubelet starts a dev node and registers it as a Node named nodeName. Pods run on it
// only when created with RunPod.
func StartKubelet(ctx context.Context, k *Kube, nodeName string) (*Kubelet, error) {
	n, err := devnode.Start(ctx, devnode.Options{Client: k.Clientset, NodeName: nodeName})
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	return &Kubelet{Node: n, NodeName: nodeName}, nil
}
