package chserver

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"unsafe"

	"github.com/ebitengine/purego"
)

// Options configures Serve.
type Options struct {
	// Library is the path of libchdb.so. Required.
	Library string
	// DataDir holds the databases. Required; created when missing.
	DataDir string
	// ListenHost is the loopback address to listen on. Default 127.0.0.1.
	ListenHost string
	// TCPPort is the native protocol port. Default 9000.
	TCPPort int
	// HTTPPort is the HTTP interface port. Default 8123.
	HTTPPort int
	// ConfigFile, when set, is a ClickHouse configuration file (XML) the engine reads. Its
	// users_config (users, their passwords and grants, and roles) is enforced on both
	// protocols; the engine keeps no SQL-managed access storage, so CREATE USER and CREATE
	// ROLE are refused whatever it says.
	ConfigFile string
}

func (o *Options) setDefaults() {
	if o.ListenHost == "" {
		o.ListenHost = "127.0.0.1"
	}
	if o.TCPPort == 0 {
		o.TCPPort = 9000
	}
	if o.HTTPPort == 0 {
		o.HTTPPort = 8123
	}
}

// Validate reports options Serve cannot use.
func (o *Options) Validate() error {
	if o.Library == "" {
		return errors.New("chserver: the path of libchdb.so is required (scripts/testbed.sh clickhouse fetches it)")
	}
	if _, err := os.Stat(o.Library); err != nil {
		return fmt.Errorf("chserver: %w (scripts/testbed.sh clickhouse fetches it)", err)
	}
	if o.DataDir == "" {
		return errors.New("chserver: a data directory is required")
	}
	if o.ConfigFile != "" {
		if _, err := os.Stat(o.ConfigFile); err != nil {
			return fmt.Errorf("chserver: %w", err)
		}
	}
	if ip := net.ParseIP(o.ListenHost); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("chserver: listen host %q is not a loopback address; the embedded engine has no authentication", o.ListenHost)
	}
	return nil
}

// Serve loads the engine and serves until the process exits; it returns only on failure. A
// process can run one engine, once.
func Serve(o Options) error {
	o.setDefaults()
	if err := o.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return fmt.Errorf("chserver: %w", err)
	}
	// The native port is the relay's; the engine listens on a port of its own behind it.
	native, err := net.Listen("tcp", net.JoinHostPort(o.ListenHost, strconv.Itoa(o.TCPPort)))
	if err != nil {
		return fmt.Errorf("chserver: %w", err)
	}
	defer native.Close()
	enginePort, err := freePort(o.ListenHost)
	if err != nil {
		return fmt.Errorf("chserver: %w", err)
	}
	go relay(native, net.JoinHostPort(o.ListenHost, strconv.Itoa(enginePort)))
	lib, err := purego.Dlopen(o.Library, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return fmt.Errorf("chserver: load %s: %w", o.Library, err)
	}
	var (
		queryCmdline  func(argc int32, argv **byte) uintptr
		resultError   func(result uintptr) *byte
		destroyResult func(result uintptr)
	)
	purego.RegisterLibFunc(&queryCmdline, lib, "chdb_query_cmdline")
	purego.RegisterLibFunc(&resultError, lib, "chdb_result_error")
	purego.RegisterLibFunc(&destroyResult, lib, "chdb_destroy_query_result")

	args := []string{"clickhouse"}
	if o.ConfigFile != "" {
		args = append(args, "--config-file="+o.ConfigFile)
	}
	args = append(args,
		"--path="+o.DataDir,
		"--listen_host="+o.ListenHost,
		"--tcp_port="+strconv.Itoa(enginePort),
		"--http_port="+strconv.Itoa(o.HTTPPort),
		// The engine logs nothing by default, not even why it aborts; errors (a failed
		// query, an engine failure) go to standard error.
		"--log-level=error", "--logger.console=1",
		"--multiquery",
		"--query=SYSTEM START LISTEN TCP; SYSTEM START LISTEN HTTP; "+blockForever,
	)
	argv := make([]*byte, len(args)+1)
	for i, a := range args {
		b := append([]byte(a), 0)
		argv[i] = &b[0]
	}
	res := queryCmdline(int32(len(args)), &argv[0])
	if res == 0 {
		return errors.New("chserver: the engine returned no result")
	}
	defer destroyResult(res)
	if msg := resultError(res); msg != nil {
		return fmt.Errorf("chserver: the engine stopped: %s", cString(msg))
	}
	return errors.New("chserver: the engine stopped serving")
}

// blockForever keeps the engine's main query running, and with it the listeners, for about
// 95 years: one row per 3 s (the longest sleepEachRow allows), one row per block.
const blockForever = "SELECT sleepEachRow(3) FROM numbers(1000000000) " +
	"SETTINGS function_sleep_max_microseconds_per_block = 0, max_block_size = 1 FORMAT Null"

// freePort returns a port on host that nothing listens on now.
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// relay passes each native-protocol client accepted on l to the engine at engine, and back.
// The engine aborts (std::terminate on an uncaught NetException) when a client resets its
// connection, as the kernel does for a client killed with data unread: whatever way a client's
// connection ends, the relay ends its own to the engine as a client that hangs up does, with a
// FIN, after reading what the engine still sends.
func relay(l net.Listener, engine string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go pipe(c.(*net.TCPConn), engine)
	}
}

// pipe copies between client and a new connection to engine until both ended.
func pipe(client *net.TCPConn, engine string) {
	defer client.Close()
	conn, err := net.Dial("tcp", engine)
	if err != nil {
		return
	}
	e := conn.(*net.TCPConn)
	defer e.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := io.Copy(client, e); err != nil {
			_, _ = io.Copy(io.Discard, e) // the client is gone: read the rest, unread data would reset
		}
		_ = client.CloseWrite()
	}()
	_, _ = io.Copy(e, client)
	_ = e.CloseWrite()
	<-done
}

func cString(p *byte) string {
	var n int
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}
