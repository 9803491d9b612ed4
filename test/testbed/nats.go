package testbed

import (
	"fmt"
	"os"

	"github.com/gatehouse-dev/gatehouse/natsbus"
)

// NATS is an embedded NATS server with JetStream, storing into a directory of its own.
type NATS struct {
	*natsbus.Server
	// Dir is the JetStream store directory; it survives Restart.
	Dir  string
	port int
}

// StartNATS starts an embedded NATS JetStream server on a free loopback port.
func StartNATS() (*NATS, error) {
	dir, err := os.MkdirTemp("", "gatehouse-nats-")
	if err != nil {
		return nil, err
	}
	n := &NATS{Dir: dir}
	if err := n.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return n, nil
}

// Start starts the server, on the port it had before when it is restarted after Shutdown.
func (n *NATS) Start() error {
	srv, err := natsbus.StartServer(natsbus.ServerOptions{StoreDir: n.Dir, Port: n.port})
	if err != nil {
		return fmt.Errorf("testbed: start NATS: %w", err)
	}
	n.Server = srv
	n.port = srv.Port()
	return nil
}

// Restart stops the server and starts it again with the same port and data.
func (n *NATS) Restart() error {
	n.Shutdown()
	return n.Start()
}

// Stop shuts the server down and removes its data.
func (n *NATS) Stop() {
	n.Shutdown()
	_ = os.RemoveAll(n.Dir)
}
