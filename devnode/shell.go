package devnode

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"sort"
	"strings"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/interp"
	"mvdan.cc/sh/v3/syntax"
)

// container is what exec and attach reach: a shell over the container's in-memory filesystem
// and environment. Nothing it runs touches the host.
type container struct {
	fs       *memFS
	env      []string // KEY=VALUE, the container's environment
	hostname string
	workDir  string
	// command is the container's command and arguments (what attach runs).
	command []string
}

// ExitCode is the error a command ended with when its exit status is not 0.
type ExitCode int

func (e ExitCode) Error() string { return fmt.Sprintf("command terminated with exit code %d", int(e)) }

// run runs argv as the container's process with the given streams. A first word of sh (or
// bash) runs the shell: `-c SCRIPT`, or commands read from stdin, with a prompt on a terminal.
// Any other command runs as the shell would run it.
func (c *container) run(ctx context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer, tty bool) error {
	return c.runWith(ctx, argv, stdin, stdout, stderr, tty, nil)
}

// runInterruptible runs argv on a terminal, each command interruptible with Ctrl-C.
func (c *container) runInterruptible(ctx context.Context, argv []string, term *os.File, intr *interrupter) error {
	return c.runWith(ctx, argv, term, term, term, true, intr)
}

func (c *container) runWith(ctx context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer, tty bool, intr *interrupter) error {
	if len(argv) == 0 {
		return errors.New("no command")
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var script string
	interactive := false
	switch name := path.Base(argv[0]); {
	case name == "sh" || name == "bash":
		args := argv[1:]
		for len(args) > 0 && strings.HasPrefix(args[0], "-") && args[0] != "-c" {
			if args[0] == "-i" {
				tty = true
			}
			args = args[1:] // -e, -l, -i and the like: accepted, mostly ignored
		}
		if len(args) >= 2 && args[0] == "-c" {
			script = args[1]
		} else if len(args) == 1 && args[0] == "-c" {
			fmt.Fprintf(stderr, "%s: -c: option requires an argument\n", name)
			return ExitCode(2)
		} else if len(args) > 0 {
			fmt.Fprintf(stderr, "%s: scripts from files are not supported here; use -c\n", name)
			return ExitCode(2)
		} else {
			interactive = true
		}
	default:
		quoted := make([]string, len(argv))
		for i, a := range argv {
			q, err := syntax.Quote(a, syntax.LangPOSIX)
			if err != nil {
				fmt.Fprintf(stderr, "%s: cannot run this argument: %v\n", argv[0], err)
				return ExitCode(126)
			}
			quoted[i] = q
		}
		script = strings.Join(quoted, " ")
	}
	if interactive {
		return c.interactive(ctx, stdin, stdout, stderr, tty, intr)
	}
	runner, err := c.newRunner(stdin, stdout, stderr)
	if err != nil {
		return err
	}
	file, err := syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(strings.NewReader(script), "")
	if err != nil {
		fmt.Fprintf(stderr, "sh: %v\n", err)
		return ExitCode(2)
	}
	if intr != nil {
		var done func()
		ctx, done = intr.start(ctx, stdin.(*os.File))
		defer done()
	}
	return exitError(runner.Run(ctx, file))
}

// interactive reads commands from stdin and runs them, with a prompt on a terminal.
func (c *container) interactive(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, tty bool, intr *interrupter) error {
	runner, err := c.newRunner(stdin, stdout, stderr)
	if err != nil {
		return err
	}
	prompt := func() {
		if tty {
			dir := runner.Dir
			fmt.Fprintf(stdout, "%s:%s$ ", c.hostname, dir)
		}
	}
	if tty {
		fmt.Fprintf(stdout, "Gatehouse dev node: a built-in shell over the pod's environment and volumes (type help).\n")
	}
	prompt()
	parser := syntax.NewParser(syntax.Variant(syntax.LangPOSIX))
	var last error
	for stmts, err := range parser.InteractiveSeq(stdin) {
		if err != nil {
			fmt.Fprintf(stderr, "sh: %v\n", err)
			prompt()
			continue
		}
		if parser.Incomplete() {
			if tty {
				fmt.Fprint(stdout, "> ")
			}
			continue
		}
		for _, st := range stmts {
			sctx, done := ctx, func() {}
			if intr != nil {
				sctx, done = intr.start(ctx, stdin.(*os.File))
			}
			last = runner.Run(sctx, st)
			interrupted := sctx.Err() != nil && ctx.Err() == nil
			done()
			if interrupted {
				fmt.Fprintln(stdout)
				last = ExitCode(130)
				break
			}
			if runner.Exited() {
				return exitError(last)
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		prompt()
	}
	return exitError(last)
}

// exitError turns the interpreter's exit status into ExitCode.
func exitError(err error) error {
	var st interp.ExitStatus
	if errors.As(err, &st) {
		if st == 0 {
			return nil
		}
		return ExitCode(int(st))
	}
	return err
}

// newRunner builds an interpreter whose every file, directory and command handler works on
// the container; none falls back to the interpreter's defaults, which use the host.
func (c *container) newRunner(stdin io.Reader, stdout, stderr io.Writer) (*interp.Runner, error) {
	env := append([]string{}, c.env...)
	// The interpreter opens named pipes of process substitution in $TMPDIR on the host,
	// bypassing the open handler. A directory that does not exist makes every such attempt
	// fail; the POSIX parser does not accept process substitution in the first place.
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	env = append(env, "TMPDIR=/nonexistent/gatehouse-devnode-"+hex.EncodeToString(nonce[:]))
	workDir := c.workDir
	if fi, err := c.fs.Stat(workDir); err != nil || !fi.IsDir() {
		workDir = "/"
	}
	return interp.New(
		interp.Env(expand.ListEnviron(env...)),
		func(r *interp.Runner) error { r.Dir = workDir; return nil },
		interp.StdIO(stdin, stdout, stderr),
		interp.CallHandler(c.call),
		// The middleware never calls next, the interpreter's default handler that runs host
		// programs.
		interp.ExecHandlers(func(interp.ExecHandlerFunc) interp.ExecHandlerFunc { return c.exec }),
		interp.OpenHandler(func(ctx context.Context, p string, flag int, _ os.FileMode) (io.ReadWriteCloser, error) {
			return c.fs.Open(abs(ctx, p), flag)
		}),
		interp.ReadDirHandler2(func(ctx context.Context, p string) ([]fs.DirEntry, error) {
			return c.fs.ReadDir(abs(ctx, p))
		}),
		interp.StatHandler(func(ctx context.Context, p string, _ bool) (fs.FileInfo, error) {
			return c.fs.Stat(abs(ctx, p))
		}),
		interp.AccessHandler(func(ctx context.Context, p string, _ interp.AccessMode) error {
			_, err := c.fs.Stat(abs(ctx, p))
			return err
		}),
	)
}

// abs resolves p against the shell's current directory.
func abs(ctx context.Context, p string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	return path.Join(interp.HandlerCtx(ctx).Dir, p)
}

// hostLookups are builtins of the interpreter that search $PATH on the host; they are answered
// by the container's own command table instead.
var hostLookups = map[string]bool{"type": true, "command": true, "hash": true}

// lookupPrefix marks a rewritten lookup builtin; a user cannot type it.
const lookupPrefix = "\x00"

func (c *container) call(_ context.Context, args []string) ([]string, error) {
	// /bin/echo and the like are the built-ins.
	for _, dir := range []string{"/bin/", "/usr/bin/", "/usr/local/bin/"} {
		if name, ok := strings.CutPrefix(args[0], dir); ok && (commands[name].run != nil || slices.Contains(shellBuiltins, name)) {
			args = append([]string{name}, args[1:]...)
		}
	}
	if hostLookups[args[0]] {
		return append([]string{lookupPrefix + args[0]}, args[1:]...), nil
	}
	return args, nil
}

// exec runs a command that is not a shell builtin.
func (c *container) exec(ctx context.Context, args []string) error {
	hc := interp.HandlerCtx(ctx)
	io := &cmdIO{ctx: ctx, fs: c.fs, dir: hc.Dir, env: hc.Env, stdin: hc.Stdin, stdout: hc.Stdout, stderr: hc.Stderr, c: c}
	name := args[0]
	if strings.HasPrefix(name, lookupPrefix) {
		return status(io.lookup(strings.TrimPrefix(name, lookupPrefix), args[1:]))
	}
	cmd, ok := commands[name]
	switch {
	case !ok && strings.Contains(name, "/"):
		fmt.Fprintf(hc.Stderr, "sh: %s: not found\n", name)
		return interp.ExitStatus(127)
	case !ok:
		fmt.Fprintf(hc.Stderr, "sh: %s: command not found (this dev node runs no images; type help for the built-in commands)\n", name)
		return interp.ExitStatus(127)
	}
	if err := cmd.run(io, args[1:]); err != nil {
		var st interp.ExitStatus
		if errors.As(err, &st) {
			return status(st)
		}
		fmt.Fprintf(hc.Stderr, "%s: %v\n", name, err)
		return interp.ExitStatus(1)
	}
	return nil
}

// status passes on a command's result; the interpreter wants nil, not status 0.
func status(err error) error {
	var st interp.ExitStatus
	if errors.As(err, &st) && st == 0 {
		return nil
	}
	return err
}

// commandNames lists the built-in commands, sorted.
func commandNames() []string {
	names := make([]string, 0, len(commands)+len(shellBuiltins))
	for n := range commands {
		names = append(names, n)
	}
	names = append(names, shellBuiltins...)
	sort.Strings(names)
	return names
}

// shellBuiltins are the interpreter's own builtins worth listing in help.
var shellBuiltins = []string{"cd", "echo", "exit", "export", "false", "printf", "pwd", "read", "set", "test", "true", "unset"}
