package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// NATS is an embedded NATS server with JetStream, secured as deployed: TLS with client
// certificates, an NKey identity per role with that role's permissions (natsbus.Permissions),
// and the streams and the approvals bucket provisioned by the administrator. Tests connect as a
// role (ConnectAs, Options, Args) to run a component as deployed, or, to set up and to forge
// what no role may, with an unrestricted identity of their own (Connect).
type NATS struct {
	*natsbus.Server
	// Dir is the JetStream store directory; it survives Restart.
	Dir string
	// KeysDir holds the seed file of every role (natsbus.SeedFile) and the users file.
	KeysDir string
	// PKI is the CA, the server's certificate and the client certificate every identity
	// presents.
	PKI   *PKI
	users []natsbus.User
	// unrestricted is the test's own identity.
	unrestricted nkeys.KeyPair
	port         int
	provisioned  bool
}

// StartNATS starts a secured NATS JetStream server on a free loopback port.
func StartNATS() (*NATS, error) {
	dir, err := os.MkdirTemp("", "gatehouse-nats-")
	if err != nil {
		return nil, err
	}
	n := &NATS{Dir: filepath.Join(dir, "jetstream"), KeysDir: filepath.Join(dir, "keys")}
	err = n.setUp(dir)
	if err == nil {
		err = n.Start()
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("testbed: start NATS: %w", err)
	}
	return n, nil
}

func (n *NATS) setUp(dir string) error {
	pkiDir := filepath.Join(dir, "pki")
	if err := os.MkdirAll(pkiDir, 0o700); err != nil {
		return err
	}
	var err error
	if n.PKI, err = NewPKI(pkiDir); err != nil {
		return err
	}
	if n.users, err = natsbus.WriteKeys(n.KeysDir, natsbus.Roles); err != nil {
		return err
	}
	n.unrestricted, err = nkeys.CreateUser()
	return err
}

// Start starts the server, on the port it had before when it is restarted after Shutdown, and
// provisions it the first time.
func (n *NATS) Start() error {
	pub, err := n.unrestricted.PublicKey()
	if err != nil {
		return err
	}
	srv, err := natsbus.StartServer(natsbus.ServerOptions{
		StoreDir:     n.Dir,
		Port:         n.port,
		Users:        n.users,
		Unrestricted: []string{pub},
		TLS:          &natsbus.ServerTLS{CertFile: n.PKI.ServerCertFile, KeyFile: n.PKI.ServerKeyFile, ClientCAFile: n.PKI.CAFile},
		// Once: a restarted server keeps its streams and bucket.
		Provision: !n.provisioned,
	})
	if err != nil {
		return fmt.Errorf("testbed: start NATS: %w", err)
	}
	n.Server, n.provisioned = srv, true
	n.port = srv.Port()
	return nil
}

// Restart stops the server and starts it again with the same port, keys and data.
func (n *NATS) Restart() error {
	n.Shutdown()
	return n.Start()
}

// Stop shuts the server down and removes its data and keys.
func (n *NATS) Stop() {
	n.Shutdown()
	_ = os.RemoveAll(filepath.Dir(n.Dir))
}

// Options returns the options a component of role connects with, as deployed.
func (n *NATS) Options(role natsbus.Role) natsbus.Options {
	return roleOptions(n.URL(), n.KeysDir, n.PKI, role)
}

// Args returns the NATS flags of a `gatehouse` command running as role.
func (n *NATS) Args(role natsbus.Role) []string { return roleArgs(n.Options(role)) }

// ConnectAs connects with role's credentials, as the component does (its inbox, TLS, client
// certificate), with opts after Gatehouse's own.
func (n *NATS) ConnectAs(role natsbus.Role, opts ...nats.Option) (*nats.Conn, error) {
	return connectAs(role, n.Options(role), opts...)
}

// roleOptions are the options of role's identity in keysDir, over TLS with pki's client
// certificate: what a component of role connects to the server at url with, as deployed.
func roleOptions(url, keysDir string, pki *PKI, role natsbus.Role) natsbus.Options {
	return natsbus.Options{
		URL:      url,
		Role:     role,
		NKeyFile: filepath.Join(keysDir, natsbus.SeedFile(role)),
		CAFile:   pki.CAFile,
		CertFile: pki.ClientCertFile,
		KeyFile:  pki.ClientKeyFile,
	}
}

// roleArgs are the NATS flags of a `gatehouse` command connecting with o.
func roleArgs(o natsbus.Options) []string {
	return []string{"--nats-url", o.URL, "--nats-nkey-file", o.NKeyFile, "--nats-ca-file", o.CAFile,
		"--nats-cert-file", o.CertFile, "--nats-key-file", o.KeyFile}
}

// connectAs connects with o as role's component does, with opts after Gatehouse's own.
func connectAs(role natsbus.Role, o natsbus.Options, opts ...nats.Option) (*nats.Conn, error) {
	seed, err := nats.NkeyOptionFromSeed(o.NKeyFile)
	if err != nil {
		return nil, err
	}
	return nats.Connect(o.URL, append([]nats.Option{seed, nats.CustomInboxPrefix(role.InboxPrefix()),
		nats.RootCAs(o.CAFile), nats.ClientCert(o.CertFile, o.KeyFile)}, opts...)...)
}

// Connect connects with the test's own identity, which may do anything: to set up, inspect and
// forge what no role may.
func (n *NATS) Connect(opts ...nats.Option) (*nats.Conn, error) {
	pub, err := n.unrestricted.PublicKey()
	if err != nil {
		return nil, err
	}
	if n.Server == nil {
		return nil, errors.New("testbed: NATS is not running")
	}
	return nats.Connect(n.URL(), append([]nats.Option{nats.Nkey(pub, n.unrestricted.Sign),
		nats.RootCAs(n.PKI.CAFile), nats.ClientCert(n.PKI.ClientCertFile, n.PKI.ClientKeyFile)}, opts...)...)
}

// DeleteStreams deletes the trail's streams the administrator provisioned, through js (a
// connection of the test's own identity, Connect): for tests of what a component does before
// NATS is provisioned.
func DeleteStreams(ctx context.Context, js jetstream.JetStream) error {
	for _, name := range []string{trail.StreamTrail, trail.StreamAudit, trail.StreamRecordings} {
		if err := js.DeleteStream(ctx, name); err != nil {
			return fmt.Errorf("testbed: delete stream %s: %w", name, err)
		}
	}
	return nil
}
