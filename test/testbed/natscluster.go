package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gatehouse-dev/gatehouse/natsbus"
)

// NATSCluster is a NATS JetStream cluster of `gatehouse nats` processes, secured as deployed:
// the components' NKeys and mutual TLS for clients, mutual TLS between the servers (routes),
// and the streams and the approvals bucket provisioned by the administrator with `gatehouse
// nats provision --replicas`. A server can be killed (SIGKILL) and started again on its ports
// with its data.
// StartNATSProcess runs one such server, not clustered.
type NATSCluster struct {
	// Dir holds the servers' stores, the keys and the PKI.
	Dir string
	// KeysDir holds the seed file of every role (natsbus.SeedFile) and the users file.
	KeysDir string
	// PKI is the CA, the certificate every server presents (to clients and to each other) and
	// the client certificate every identity presents.
	PKI *PKI
	// Replicas is the replication factor of the streams and the bucket.
	Replicas int

	servers []*clusterServer
	// standalone: one server, not clustered, that provisions the streams and the bucket itself
	// (StartNATSProcess).
	standalone bool
}

type clusterServer struct {
	name              string
	port, clusterPort int
	proc              *Process
}

// StartNATSCluster starts a cluster of size servers on free loopback ports and provisions it
// with as many replicas as servers.
func StartNATSCluster(size int) (*NATSCluster, error) {
	dir, err := os.MkdirTemp("", "gatehouse-nats-cluster-")
	if err != nil {
		return nil, err
	}
	c := &NATSCluster{Dir: dir, KeysDir: filepath.Join(dir, "keys"), Replicas: size}
	if err := c.start(size); err != nil {
		c.Stop()
		return nil, fmt.Errorf("testbed: start a NATS cluster: %w", err)
	}
	return c, nil
}

// StartNATSProcess starts one `gatehouse nats` server in a process of its own, as a deployment
// runs it: not clustered, with the streams and the bucket provisioned by the server at its
// start, secured as StartNATS's. Its CPU is not the test process's: benchmarks use it to count a
// component's own cost, and ServerCPUTime to report the server's apart.
func StartNATSProcess() (*NATSCluster, error) {
	dir, err := os.MkdirTemp("", "gatehouse-nats-process-")
	if err != nil {
		return nil, err
	}
	c := &NATSCluster{Dir: dir, KeysDir: filepath.Join(dir, "keys"), Replicas: 1, standalone: true}
	if err := c.start(1); err != nil {
		c.Stop()
		return nil, fmt.Errorf("testbed: start a NATS server process: %w", err)
	}
	return c, nil
}

func (c *NATSCluster) start(size int) error {
	pkiDir := filepath.Join(c.Dir, "pki")
	if err := os.MkdirAll(pkiDir, 0o700); err != nil {
		return err
	}
	var err error
	if c.PKI, err = NewPKI(pkiDir); err != nil {
		return err
	}
	if _, err := natsbus.WriteKeys(c.KeysDir, natsbus.Roles); err != nil {
		return err
	}
	for i := range size {
		port, err := freePort()
		if err != nil {
			return err
		}
		clusterPort, err := freePort()
		if err != nil {
			return err
		}
		c.servers = append(c.servers, &clusterServer{name: "nats-" + strconv.Itoa(i), port: port, clusterPort: clusterPort})
	}
	// All at once, as a StatefulSet with parallel pod management starts them: each waits for
	// the others through its routes.
	for i := range c.servers {
		if err := c.StartServer(i); err != nil {
			return err
		}
	}
	for i := range c.servers {
		if err := c.waitServing(i, time.Minute); err != nil {
			return err
		}
	}
	if c.standalone {
		return nil // the server provisioned itself before it said it serves
	}
	return c.provision(2 * time.Minute)
}

// StartServer starts server i (again, after KillServer), on its ports and with its data.
func (c *NATSCluster) StartServer(i int) error {
	s := c.servers[i]
	args := []string{"nats", "--log-format", "text", "--server-name", s.name,
		"--bind-address", "127.0.0.1", "--port", strconv.Itoa(s.port),
		"--store-dir", filepath.Join(c.Dir, s.name),
		"--users-file", filepath.Join(c.KeysDir, natsbus.UsersFile),
		"--tls-cert-file", c.PKI.ServerCertFile, "--tls-private-key-file", c.PKI.ServerKeyFile,
		"--client-ca-file", c.PKI.CAFile}
	if !c.standalone {
		var routes []string
		for _, o := range c.servers {
			routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(o.clusterPort))
		}
		args = append(args, "--cluster-name", "gatehouse-test", "--cluster-port", strconv.Itoa(s.clusterPort),
			"--routes", strings.Join(routes, ","), "--cluster-ca-file", c.PKI.CAFile)
	}
	p, err := StartGatehouse(args...)
	if err != nil {
		return err
	}
	s.proc = p
	return nil
}

// waitServing waits until server i says it serves.
func (c *NATSCluster) waitServing(i int, timeout time.Duration) error {
	p := c.servers[i].proc
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.Output(), "NATS JetStream ready") {
		select {
		case <-p.exited:
			return fmt.Errorf("testbed: NATS server %s exited: %s", c.servers[i].name, p.out.tail(4000))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testbed: NATS server %s not serving after %s: %s", c.servers[i].name, timeout, p.out.tail(4000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// provision runs `gatehouse nats provision --replicas` as the administrator until it succeeds:
// replicated streams need a JetStream meta leader and enough servers.
func (c *NATSCluster) provision(timeout time.Duration) error {
	bin, err := GatehouseBinary()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		args := append([]string{"nats", "provision", "--log-format", "text", "--timeout", "20s",
			"--replicas", strconv.Itoa(c.Replicas)}, c.Args(natsbus.RoleAdmin)...)
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testbed: gatehouse nats provision --replicas %d: %w: %s", c.Replicas, err, out)
		}
		time.Sleep(time.Second)
	}
}

// KillServer kills server i with SIGKILL: no shutdown, no leader hand-over.
func (c *NATSCluster) KillServer(i int) error {
	return c.servers[i].proc.Kill()
}

// RestartServer starts server i again after KillServer and waits until it serves.
func (c *NATSCluster) RestartServer(i int) error {
	if err := c.StartServer(i); err != nil {
		return err
	}
	return c.waitServing(i, time.Minute)
}

// ServerCPUTime returns the CPU time (user and system) server i used so far.
func (c *NATSCluster) ServerCPUTime(i int) (time.Duration, error) {
	return c.servers[i].proc.CPUTime()
}

// ServerName returns the name of server i, as JetStream reports leaders and peers.
func (c *NATSCluster) ServerName(i int) string { return c.servers[i].name }

// Index returns the index of the server named name, or -1.
func (c *NATSCluster) Index(name string) int {
	for i, s := range c.servers {
		if s.name == name {
			return i
		}
	}
	return -1
}

// Output returns what server i logged.
func (c *NATSCluster) Output(i int) string { return c.servers[i].proc.Output() }

// URL returns the client URLs of every server, comma separated, as components are given them.
func (c *NATSCluster) URL() string {
	urls := make([]string, len(c.servers))
	for i, s := range c.servers {
		urls[i] = "tls://127.0.0.1:" + strconv.Itoa(s.port)
	}
	return strings.Join(urls, ",")
}

// Stop kills every server and removes the data, the keys and the PKI.
func (c *NATSCluster) Stop() {
	for _, s := range c.servers {
		if s.proc != nil {
			_ = s.proc.Stop()
		}
	}
	_ = os.RemoveAll(c.Dir)
}

// Options returns the options a component of role connects with, as deployed.
func (c *NATSCluster) Options(role natsbus.Role) natsbus.Options {
	return roleOptions(c.URL(), c.KeysDir, c.PKI, role)
}

// Args returns the NATS flags of a `gatehouse` command running as role.
func (c *NATSCluster) Args(role natsbus.Role) []string { return roleArgs(c.Options(role)) }

// ConnectAs connects with role's credentials, as the component does, reconnecting to the other
// servers without end, with opts after Gatehouse's own. The administrator's connection inspects
// streams and consumers.
func (c *NATSCluster) ConnectAs(role natsbus.Role, opts ...nats.Option) (*nats.Conn, error) {
	return connectAs(role, c.Options(role), append([]nats.Option{nats.MaxReconnects(-1)}, opts...)...)
}

// Leader returns the name of the server leading stream's replica group, waiting for one to be
// elected.
func Leader(ctx context.Context, js jetstream.JetStream, stream string) (string, error) {
	for {
		s, err := js.Stream(ctx, stream)
		if err == nil {
			info, err := s.Info(ctx)
			if err == nil && info.Cluster != nil && info.Cluster.Leader != "" {
				return info.Cluster.Leader, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", errors.Join(fmt.Errorf("testbed: no leader of stream %s", stream), ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
