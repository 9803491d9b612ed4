package natsbus

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerOptions configures an embedded NATS server.
type ServerOptions struct {
	// StoreDir is where JetStream keeps its data. Required: an embedded server must survive its
	// own restart with its streams and key-value buckets intact.
	StoreDir string
	// Host is the address to listen on. Default 127.0.0.1: the embedded server has no
	// authentication and must not be reachable from elsewhere.
	Host string
	// Port is the client port. Default: a free port chosen by the system.
	Port int
	// Logger receives the server's log. Default: discard.
	Logger *slog.Logger
}

// Server is an embedded NATS server with JetStream enabled.
type Server struct {
	srv *server.Server
}

// StartServer starts an embedded NATS server and waits until it accepts connections.
func StartServer(o ServerOptions) (*Server, error) {
	if o.StoreDir == "" {
		return nil, errors.New("natsbus: ServerOptions.StoreDir is required")
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Port == 0 {
		o.Port = server.RANDOM_PORT
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "gatehouse-embedded",
		Host:       o.Host,
		Port:       o.Port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		NoSigs:     true,
	})
	if err != nil {
		return nil, fmt.Errorf("natsbus: configure embedded server: %w", err)
	}
	if o.Logger != nil {
		srv.SetLoggerV2(serverLogger{o.Logger}, false, false, false)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("natsbus: embedded server on %s:%d not ready after 10s", o.Host, o.Port)
	}
	return &Server{srv: srv}, nil
}

// URL returns the client URL, e.g. nats://127.0.0.1:4222.
func (s *Server) URL() string { return s.srv.ClientURL() }

// Port returns the client port, so a restarted server can listen where the old one did.
func (s *Server) Port() int { return s.srv.Addr().(*net.TCPAddr).Port }

// Shutdown stops the server and waits until it is down.
func (s *Server) Shutdown() {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}

// serverLogger adapts slog to nats-server's logger.
type serverLogger struct{ l *slog.Logger }

func (s serverLogger) Noticef(format string, v ...any) { s.l.Info(fmt.Sprintf(format, v...)) }
func (s serverLogger) Warnf(format string, v ...any)   { s.l.Warn(fmt.Sprintf(format, v...)) }
func (s serverLogger) Fatalf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s serverLogger) Errorf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s serverLogger) Debugf(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s serverLogger) Tracef(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }
