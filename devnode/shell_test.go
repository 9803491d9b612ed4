package devnode

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testContainer(t *testing.T) *container {
	t.Helper()
	c := &container{fs: newMemFS(1 << 20), env: []string{"HOME=/", "PATH=/bin", "GREETING=hello", "DB_PASSWORD=s3cr3t"}, hostname: "web-0", workDir: "/", command: []string{"nginx"}}
	require.NoError(t, c.fs.putFile("/etc/creds/password", []byte("s3cr3t"), true))
	return c
}

func run(t *testing.T, c *container, stdin string, argv ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := c.run(t.Context(), argv, strings.NewReader(stdin), &out, &errb, false)
	return out.String(), errb.String(), err
}

func TestShell(t *testing.T) {
	tests := []struct {
		name       string
		stdin      string
		argv       []string
		wantOut    string
		wantErr    string
		wantCode   int
		notContain string
	}{
		{name: "echo", argv: []string{"echo", "admitted"}, wantOut: "admitted\n"},
		{name: "cat echoes stdin", stdin: "round trip\n", argv: []string{"cat"}, wantOut: "round trip\n"},
		{name: "tr", stdin: "through the gateway\n", argv: []string{"tr", "a-z", "A-Z"}, wantOut: "THROUGH THE GATEWAY\n"},
		{name: "sh -c with stderr and exit code", argv: []string{"sh", "-c", "echo to-stderr >&2; exit 3"}, wantErr: "to-stderr\n", wantCode: 3},
		{name: "comment", argv: []string{"sh", "-c", "echo migrated # --password x"}, wantOut: "migrated\n"},
		{name: "pipe and variables", argv: []string{"sh", "-c", `echo "$GREETING world" | tr a-z A-Z`}, wantOut: "HELLO WORLD\n"},
		{name: "env shows the pod's environment", argv: []string{"env"}, wantOut: "DB_PASSWORD=s3cr3t\nGREETING=hello\nHOME=/\nPATH=/bin\n"},
		{name: "printenv", argv: []string{"printenv", "GREETING"}, wantOut: "hello\n"},
		{name: "files live in memory", argv: []string{"sh", "-c", "mkdir -p /tmp/a && echo data > /tmp/a/f && cat /tmp/a/f && ls /tmp/a"}, wantOut: "data\nf\n"},
		{name: "secret volume", argv: []string{"cat", "/etc/creds/password"}, wantOut: "s3cr3t"},
		{name: "volumes are read-only", argv: []string{"sh", "-c", "echo x > /etc/creds/password"}, wantErr: "read-only", wantCode: 1},
		{name: "the host's files are not there", argv: []string{"cat", "/etc/shadow"}, wantErr: "No such file", wantCode: 1},
		{name: "nor the host's passwd", argv: []string{"cat", "/etc/passwd"}, wantOut: "nobody:x:65534:65534:nobody:/:/bin/sh\n", notContain: "root:"},
		{name: "dot-dot stays inside", argv: []string{"ls", "../../../../proc"}, wantErr: "No such file", wantCode: 2},
		{name: "unknown commands", argv: []string{"python3", "-c", "print(1)"}, wantErr: "command not found", wantCode: 127},
		{name: "absolute paths of host binaries", argv: []string{"/usr/bin/python3"}, wantErr: "not found", wantCode: 127},
		{name: "bin paths of built-ins", argv: []string{"/bin/echo", "ok"}, wantOut: "ok\n"},
		{name: "type answers from the built-ins", argv: []string{"sh", "-c", "type ls; command -v cat; command -v python3 || echo none"}, wantOut: "ls is /bin/ls\n/bin/cat\nnone\n"},
		{name: "type does not search the host", argv: []string{"sh", "-c", "PATH=/usr/bin:/bin; command -v perl || echo none"}, wantOut: "none\n"},
		{name: "process substitution is refused", argv: []string{"sh", "-c", "cat <(echo hi)"}, wantCode: 2, wantErr: "sh:"},
		{name: "eval of process substitution touches no host file", argv: []string{"sh", "-c", "eval 'cat <(echo hi)'"}, wantErr: "cannot create fifo"},
		{name: "globs read the container's directories", argv: []string{"sh", "-c", "echo /etc/*"}, wantOut: "/etc/creds\n"},
		{name: "wc and grep", stdin: "a\nb\nab\n", argv: []string{"sh", "-c", "grep a | wc -l"}, wantOut: "2\n"},
		{name: "head", stdin: "1\n2\n3\n", argv: []string{"head", "-n", "2"}, wantOut: "1\n2\n"},
		{name: "head -c", stdin: "1\n2\n3\n", argv: []string{"head", "-c", "3"}, wantOut: "1\n2"},
		{name: "head -c past the end", stdin: "1\n", argv: []string{"head", "-c3"}, wantOut: "1\n"},
		{name: "yes ends with the pipe's reader", argv: []string{"sh", "-c", "yes an ordinary line | head -c 100000 | wc -c"}, wantOut: "100000\n"},
		{name: "yes says y", argv: []string{"sh", "-c", "yes | head -n 2"}, wantOut: "y\ny\n"},
		{name: "sort and base64", stdin: "b\na\nb\n", argv: []string{"sh", "-c", "sort -u | base64 | base64 -d"}, wantOut: "a\nb\n"},
		{name: "hostname", argv: []string{"hostname"}, wantOut: "web-0\n"},
		{name: "redirect to /dev/null", argv: []string{"sh", "-c", "echo gone > /dev/null; echo kept"}, wantOut: "kept\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testContainer(t)
			if tt.name == "nor the host's passwd" {
				require.NoError(t, c.fs.putFile("/etc/passwd", []byte("nobody:x:65534:65534:nobody:/:/bin/sh\n"), true))
			}
			out, errOut, err := run(t, c, tt.stdin, tt.argv...)
			if tt.wantCode == 0 {
				require.NoError(t, err, "stderr: %s", errOut)
			} else {
				var code ExitCode
				require.True(t, errors.As(err, &code), "want exit code %d, got %v (stderr %q)", tt.wantCode, err, errOut)
				assert.Equal(t, tt.wantCode, int(code), "stderr: %s", errOut)
			}
			if tt.wantOut != "" || tt.wantCode == 0 {
				assert.Equal(t, tt.wantOut, out)
			}
			if tt.wantErr != "" {
				assert.Contains(t, errOut, tt.wantErr)
			}
			if tt.notContain != "" {
				assert.NotContains(t, out, tt.notContain)
			}
		})
	}
}

// TestYesEndsQuietly checks that yes ends without a message when its reader is gone, as a
// program that SIGPIPE ends does.
func TestYesEndsQuietly(t *testing.T) {
	out, errOut, err := run(t, testContainer(t), "", "sh", "-c", "yes | head -n 1")
	require.NoError(t, err)
	assert.Equal(t, "y\n", out)
	assert.Empty(t, errOut)
}

// TestShellNeverTouchesTheHost runs commands that would change or reveal the machine in an
// ordinary shell and checks that the machine did not change.
func TestShellNeverTouchesTheHost(t *testing.T) {
	dir := t.TempDir()
	canary := filepath.Join(dir, "canary")
	c := testContainer(t)
	for _, script := range []string{
		"echo pwned > " + canary,
		"mkdir -p " + dir + "/made",
		"touch " + dir + "/touched",
		"cd " + dir + " && echo pwned > canary",
		"rm -rf " + dir,
		"exec /bin/sh -c 'echo pwned > " + canary + "'",
		"TMPDIR=" + dir + " eval 'cat <(echo hi)'",
		"printf pwned > " + os.TempDir() + "/sh-interp-0000",
	} {
		_, _, _ = run(t, c, "", "sh", "-c", script)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "the shell wrote to the host")
	_, err = os.Stat(filepath.Join(os.TempDir(), "sh-interp-0000"))
	assert.True(t, os.IsNotExist(err), "the shell wrote to the host's temporary directory")
}

func TestTarRoundTrip(t *testing.T) {
	// kubectl cp into the container: an archive on stdin extracted with -C.
	var archive bytes.Buffer
	tw := tar.NewWriter(&archive)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "notes.txt", Mode: 0o644, Size: 6, Typeflag: tar.TypeReg}))
	_, _ = tw.Write([]byte("hello\n"))
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "../../escape.txt", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg}))
	_, _ = tw.Write([]byte("x"))
	require.NoError(t, tw.Close())
	c := testContainer(t)
	_, errOut, err := run(t, c, archive.String(), "tar", "--no-same-permissions", "--no-same-owner", "-xmf", "-", "-C", "/tmp/dst")
	require.NoError(t, err, errOut)
	got, err := c.fs.ReadFile("/tmp/dst/notes.txt")
	require.NoError(t, err)
	assert.Equal(t, "hello\n", string(got))
	_, err = c.fs.ReadFile("/tmp/dst/escape.txt")
	require.NoError(t, err, "a name leaving the directory is kept inside it")

	// kubectl cp out of the container.
	out, errOut, err := run(t, c, "", "tar", "cf", "-", "-C", "/tmp/dst", "notes.txt")
	require.NoError(t, err, errOut)
	tr := tar.NewReader(strings.NewReader(out))
	hdr, err := tr.Next()
	require.NoError(t, err)
	assert.Equal(t, "notes.txt", hdr.Name)
}

func TestFilesystemLimit(t *testing.T) {
	c := &container{fs: newMemFS(1024), hostname: "p", workDir: "/"}
	_, errOut, err := run(t, c, strings.Repeat("x", 4096), "sh", "-c", "cat > /tmp/big")
	require.Error(t, err)
	assert.Contains(t, errOut, "no space left")
}
