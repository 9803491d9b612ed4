package devnode

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/interp"
)

// cmdIO is what a built-in command works with.
type cmdIO struct {
	ctx    context.Context
	c      *container
	fs     *memFS
	dir    string
	env    expand.Environ
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

func (o *cmdIO) abs(p string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	return path.Join(o.dir, p)
}

func (o *cmdIO) errorf(format string, args ...any) {
	fmt.Fprintf(o.stderr, format+"\n", args...)
}

type command struct {
	help string
	run  func(o *cmdIO, args []string) error
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"cat":      {"print files (or stdin)", cmdCat},
		"ls":       {"list a directory (-l, -a, -1)", cmdLs},
		"env":      {"print the environment", cmdEnv},
		"printenv": {"print the environment, or one variable", cmdPrintenv},
		"tr":       {"translate or delete characters (tr a-z A-Z, tr -d CHARS)", cmdTr},
		"head":     {"first lines (-n N), or bytes (-c N)", func(o *cmdIO, a []string) error { return cmdHeadTail(o, a, true) }},
		"tail":     {"last lines (-n N)", func(o *cmdIO, a []string) error { return cmdHeadTail(o, a, false) }},
		"wc":       {"count lines, words and bytes (-l, -w, -c)", cmdWc},
		"yes":      {"print a line (y, or the arguments) again and again until the output is closed", cmdYes},
		"grep":     {"print lines matching a regular expression (-i, -v, -n, -q)", cmdGrep},
		"sort":     {"sort lines (-r, -u)", cmdSort},
		"base64":   {"encode, or decode (-d), base64", cmdBase64},
		"mkdir":    {"make directories (-p)", cmdMkdir},
		"rm":       {"remove files (-r, -f)", cmdRm},
		"touch":    {"create empty files", cmdTouch},
		"tar":      {"create (c) or extract (x) tar archives: what kubectl cp uses", cmdTar},
		"sleep":    {"wait N seconds", cmdSleep},
		"date": {"print the time", func(o *cmdIO, _ []string) error {
			fmt.Fprintln(o.stdout, time.Now().UTC().Format(time.UnixDate))
			return nil
		}},
		"hostname": {"print the pod's name", func(o *cmdIO, _ []string) error { fmt.Fprintln(o.stdout, o.c.hostname); return nil }},
		"whoami":   {"print the user", func(o *cmdIO, _ []string) error { fmt.Fprintln(o.stdout, "nobody"); return nil }},
		"id": {"print the user and group IDs", func(o *cmdIO, _ []string) error {
			fmt.Fprintln(o.stdout, "uid=65534(nobody) gid=65534(nogroup)")
			return nil
		}},
		"uname": {"print the system name", cmdUname},
		"ps":    {"list the container's processes", cmdPs},
		"clear": {"clear the terminal", func(o *cmdIO, _ []string) error { fmt.Fprint(o.stdout, "\x1b[H\x1b[2J"); return nil }},
		"help":  {"list the commands", cmdHelp},
	}
	// The shell itself, nested: sh -c '...'.
	for _, sh := range []string{"sh", "bash"} {
		commands[sh] = command{"the shell (sh -c SCRIPT)", func(o *cmdIO, args []string) error {
			err := o.c.run(o.ctx, append([]string{sh}, args...), o.stdin, nopCloser{o.stdout}, nopCloser{o.stderr}, false)
			var code ExitCode
			if errors.As(err, &code) {
				return interp.ExitStatus(uint8(code))
			}
			return err
		}}
	}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// lookup answers type, command and hash from the container's command table.
func (o *cmdIO) lookup(builtin string, args []string) error {
	quiet := false
	var names []string
	for _, a := range args {
		switch {
		case a == "-v" || a == "-V":
			quiet = a == "-v"
		case strings.HasPrefix(a, "-"):
		default:
			names = append(names, a)
		}
	}
	if builtin == "hash" {
		return nil
	}
	if builtin == "command" && !quiet && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		// command NAME ARGS...: run it, skipping functions.
		return interp.ExitStatus(o.runNested(args))
	}
	status := 0
	for _, n := range names {
		_, isCmd := commands[n]
		isBuiltin := false
		for _, b := range shellBuiltins {
			isBuiltin = isBuiltin || b == n
		}
		switch {
		case isCmd && quiet:
			fmt.Fprintln(o.stdout, "/bin/"+n)
		case isCmd:
			fmt.Fprintf(o.stdout, "%s is /bin/%s\n", n, n)
		case isBuiltin && quiet:
			fmt.Fprintln(o.stdout, n)
		case isBuiltin:
			fmt.Fprintf(o.stdout, "%s is a shell builtin\n", n)
		default:
			if !quiet {
				o.errorf("%s: %s: not found", builtin, n)
			}
			status = 1
		}
	}
	return interp.ExitStatus(uint8(status))
}

func (o *cmdIO) runNested(args []string) uint8 {
	cmd, ok := commands[args[0]]
	if !ok {
		o.errorf("sh: %s: command not found", args[0])
		return 127
	}
	if err := cmd.run(o, args[1:]); err != nil {
		var st interp.ExitStatus
		if errors.As(err, &st) {
			return uint8(st)
		}
		o.errorf("%s: %v", args[0], err)
		return 1
	}
	return 0
}

// flags splits single-letter flags (-la, -n 5) from operands. withValue names the flags that
// take a value.
func flags(args []string, withValue string) (map[byte]string, []string, error) {
	set := map[byte]string{}
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			rest = append(rest, a)
			continue
		}
		for j := 1; j < len(a); j++ {
			f := a[j]
			if strings.IndexByte(withValue, f) < 0 {
				set[f] = ""
				continue
			}
			switch {
			case j+1 < len(a):
				set[f] = a[j+1:]
			case i+1 < len(args):
				i++
				set[f] = args[i]
			default:
				return nil, nil, fmt.Errorf("option -%c needs a value", f)
			}
			break
		}
	}
	return set, rest, nil
}

// inputs calls fn with each named file, or stdin when there is none or the name is "-".
func (o *cmdIO) inputs(files []string, fn func(name string, r io.Reader) error) error {
	if len(files) == 0 {
		files = []string{"-"}
	}
	failed := false
	for _, f := range files {
		if f == "-" {
			if err := fn("-", o.stdin); err != nil {
				return err
			}
			continue
		}
		data, err := o.fs.ReadFile(o.abs(f))
		if err != nil {
			o.errorf("%s", pathError(err, f))
			failed = true
			continue
		}
		if err := fn(f, bytes.NewReader(data)); err != nil {
			return err
		}
	}
	if failed {
		return interp.ExitStatus(1)
	}
	return nil
}

// pathError phrases a filesystem error as coreutils do.
func pathError(err error, name string) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	msg := err.Error()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		msg = "No such file or directory"
	case errors.Is(err, fs.ErrExist):
		msg = "File exists"
	case errors.Is(err, errReadOnly):
		msg = "Read-only file system"
	}
	return name + ": " + msg
}

func cmdCat(o *cmdIO, args []string) error {
	return o.inputs(args, func(_ string, r io.Reader) error {
		_, err := io.Copy(o.stdout, r)
		return err
	})
}

func cmdLs(o *cmdIO, args []string) error {
	set, paths, err := flags(args, "")
	if err != nil {
		return err
	}
	_, long := set['l']
	_, all := set['a']
	if _, a := set['A']; a {
		all = true
	}
	if len(paths) == 0 {
		paths = []string{"."}
	}
	failed := false
	for i, p := range paths {
		fi, err := o.fs.Stat(o.abs(p))
		if err != nil {
			o.errorf("ls: cannot access '%s'", pathError(err, p))
			failed = true
			continue
		}
		if !fi.IsDir() {
			printEntry(o.stdout, fi, p, long)
			continue
		}
		if len(paths) > 1 {
			if i > 0 {
				fmt.Fprintln(o.stdout)
			}
			fmt.Fprintf(o.stdout, "%s:\n", p)
		}
		entries, err := o.fs.ReadDir(o.abs(p))
		if err != nil {
			return err
		}
		for _, e := range entries {
			if !all && strings.HasPrefix(e.Name(), ".") {
				continue
			}
			info, _ := e.Info()
			printEntry(o.stdout, info, e.Name(), long)
		}
	}
	if failed {
		return interp.ExitStatus(2)
	}
	return nil
}

func printEntry(w io.Writer, fi fs.FileInfo, name string, long bool) {
	if !long {
		fmt.Fprintln(w, name)
		return
	}
	fmt.Fprintf(w, "%s 1 nobody nogroup %8d %s %s\n", fi.Mode().String(), fi.Size(), fi.ModTime().UTC().Format("Jan _2 15:04"), name)
}

func environ(env expand.Environ) []string {
	var out []string
	for name, v := range env.Each {
		if v.Exported && v.IsSet() && name != "TMPDIR" {
			out = append(out, name+"="+v.String())
		}
	}
	return out
}

func cmdEnv(o *cmdIO, args []string) error {
	if len(args) > 0 {
		o.errorf("env: running commands with a changed environment is not supported here; use VAR=value command")
		return interp.ExitStatus(125)
	}
	vars := environ(o.env)
	sort.Strings(vars)
	for _, kv := range vars {
		fmt.Fprintln(o.stdout, kv)
	}
	return nil
}

func cmdPrintenv(o *cmdIO, args []string) error {
	if len(args) == 0 {
		return cmdEnv(o, nil)
	}
	status := 0
	for _, name := range args {
		v := o.env.Get(name)
		if !v.IsSet() || !v.Exported {
			status = 1
			continue
		}
		fmt.Fprintln(o.stdout, v.String())
	}
	return interp.ExitStatus(uint8(status))
}

// expandSet expands a tr set: ranges (a-z) and the escapes \n, \t, \\.
func expandSet(s string) []rune {
	r := []rune(strings.NewReplacer(`\n`, "\n", `\t`, "\t", `\\`, `\`).Replace(s))
	var out []rune
	for i := 0; i < len(r); i++ {
		if i+2 < len(r) && r[i+1] == '-' && r[i] <= r[i+2] {
			for c := r[i]; c <= r[i+2]; c++ {
				out = append(out, c)
			}
			i += 2
			continue
		}
		out = append(out, r[i])
	}
	return out
}

func cmdTr(o *cmdIO, args []string) error {
	set, ops, err := flags(args, "")
	if err != nil {
		return err
	}
	_, del := set['d']
	mapping := map[rune]rune{}
	switch {
	case del && len(ops) == 1:
		for _, c := range expandSet(ops[0]) {
			mapping[c] = -1
		}
	case !del && len(ops) == 2:
		from, to := expandSet(ops[0]), expandSet(ops[1])
		if len(to) == 0 {
			return errors.New("when not deleting, two sets are needed")
		}
		for i, c := range from {
			if i < len(to) {
				mapping[c] = to[i]
			} else {
				mapping[c] = to[len(to)-1]
			}
		}
	default:
		return errors.New("usage: tr SET1 SET2, or tr -d SET")
	}
	in := bufio.NewReader(o.stdin)
	out := bufio.NewWriter(o.stdout)
	defer out.Flush()
	for {
		c, _, err := in.ReadRune()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if m, ok := mapping[c]; ok {
			if m < 0 {
				continue
			}
			c = m
		}
		_, _ = out.WriteRune(c)
		if c == '\n' {
			// Line by line, so an interactive tr answers each line.
			if err := out.Flush(); err != nil {
				return err
			}
		}
	}
}

func cmdHeadTail(o *cmdIO, args []string, head bool) error {
	set, files, err := flags(args, "nc")
	if err != nil {
		return err
	}
	if v, ok := set['c']; ok && head {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("invalid number of bytes: %q", v)
		}
		return o.inputs(files, func(_ string, r io.Reader) error {
			_, err := io.CopyN(o.stdout, r, n)
			if err == io.EOF {
				return nil
			}
			return err
		})
	}
	n := 10
	if v, ok := set['n']; ok {
		if n, err = strconv.Atoi(strings.TrimPrefix(v, "+")); err != nil {
			return fmt.Errorf("invalid number of lines: %q", v)
		}
	}
	return o.inputs(files, func(_ string, r io.Reader) error {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var lines []string
		for i := 0; sc.Scan(); i++ {
			if head {
				if i >= n {
					break
				}
				fmt.Fprintln(o.stdout, sc.Text())
				continue
			}
			lines = append(lines, sc.Text())
			if len(lines) > n {
				lines = lines[1:]
			}
		}
		for _, l := range lines {
			fmt.Fprintln(o.stdout, l)
		}
		return nil
	})
}

// cmdYes writes its line until writing fails (the reader of a pipe is gone) or the command is
// interrupted.
func cmdYes(o *cmdIO, args []string) error {
	line := "y\n"
	if len(args) > 0 {
		line = strings.Join(args, " ") + "\n"
	}
	buf := []byte(strings.Repeat(line, max(1, (32<<10)/len(line))))
	for o.ctx.Err() == nil {
		if _, err := o.stdout.Write(buf); err != nil {
			if errors.Is(err, io.ErrClosedPipe) || errors.Is(err, syscall.EPIPE) {
				// What a shell reports for a program SIGPIPE ended, without a message.
				return interp.ExitStatus(128 + 13)
			}
			return err
		}
	}
	return o.ctx.Err()
}

func cmdWc(o *cmdIO, args []string) error {
	set, files, err := flags(args, "")
	if err != nil {
		return err
	}
	return o.inputs(files, func(name string, r io.Reader) error {
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		counts := map[byte]int{'l': bytes.Count(data, []byte("\n")), 'w': len(bytes.Fields(data)), 'c': len(data)}
		var cols []string
		for _, f := range []byte("lwc") {
			if _, ok := set[f]; ok || len(set) == 0 {
				cols = append(cols, strconv.Itoa(counts[f]))
			}
		}
		if name != "-" {
			cols = append(cols, name)
		}
		fmt.Fprintln(o.stdout, strings.Join(cols, " "))
		return nil
	})
}

func cmdGrep(o *cmdIO, args []string) error {
	set, ops, err := flags(args, "e")
	if err != nil {
		return err
	}
	pattern, ok := set['e']
	if !ok {
		if len(ops) == 0 {
			return interp.ExitStatus(2)
		}
		pattern, ops = ops[0], ops[1:]
	}
	if _, ok := set['i']; ok {
		pattern = "(?i)" + pattern
	}
	if _, ok := set['F']; ok {
		pattern = regexp.QuoteMeta(pattern)
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return err
	}
	_, invert := set['v']
	_, number := set['n']
	_, quiet := set['q']
	matched := false
	err = o.inputs(ops, func(name string, r io.Reader) error {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for i := 1; sc.Scan(); i++ {
			if re.MatchString(sc.Text()) == invert {
				continue
			}
			matched = true
			if quiet {
				continue
			}
			prefix := ""
			if len(ops) > 1 {
				prefix = name + ":"
			}
			if number {
				prefix += strconv.Itoa(i) + ":"
			}
			fmt.Fprintln(o.stdout, prefix+sc.Text())
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !matched {
		return interp.ExitStatus(1)
	}
	return nil
}

func cmdSort(o *cmdIO, args []string) error {
	set, files, err := flags(args, "")
	if err != nil {
		return err
	}
	var lines []string
	err = o.inputs(files, func(_ string, r io.Reader) error {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		return sc.Err()
	})
	if err != nil {
		return err
	}
	sort.Strings(lines)
	if _, ok := set['r']; ok {
		slices.Reverse(lines)
	}
	if _, ok := set['u']; ok {
		lines = slices.Compact(lines)
	}
	for _, l := range lines {
		fmt.Fprintln(o.stdout, l)
	}
	return nil
}

func cmdBase64(o *cmdIO, args []string) error {
	set, files, err := flags(args, "")
	if err != nil {
		return err
	}
	_, decode := set['d']
	return o.inputs(files, func(_ string, r io.Reader) error {
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		if decode {
			out, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
			if err != nil {
				return errors.New("invalid input")
			}
			_, err = o.stdout.Write(out)
			return err
		}
		fmt.Fprintln(o.stdout, base64.StdEncoding.EncodeToString(data))
		return nil
	})
}

func cmdMkdir(o *cmdIO, args []string) error {
	set, dirs, err := flags(args, "m")
	if err != nil {
		return err
	}
	_, parents := set['p']
	for _, d := range dirs {
		if parents {
			err = o.fs.MkdirAll(o.abs(d))
		} else {
			err = o.fs.Mkdir(o.abs(d))
		}
		if err != nil {
			o.errorf("mkdir: cannot create directory '%s'", pathError(err, d))
			return interp.ExitStatus(1)
		}
	}
	return nil
}

func cmdRm(o *cmdIO, args []string) error {
	set, files, err := flags(args, "")
	if err != nil {
		return err
	}
	_, recursive := set['r']
	if _, ok := set['R']; ok {
		recursive = true
	}
	_, force := set['f']
	status := uint8(0)
	for _, f := range files {
		if err := o.fs.Remove(o.abs(f), recursive); err != nil && !(force && errors.Is(err, fs.ErrNotExist)) {
			o.errorf("rm: cannot remove '%s'", pathError(err, f))
			status = 1
		}
	}
	return interp.ExitStatus(status)
}

func cmdTouch(o *cmdIO, args []string) error {
	_, files, err := flags(args, "")
	if err != nil {
		return err
	}
	for _, f := range files {
		w, err := o.fs.Open(o.abs(f), os.O_WRONLY|os.O_CREATE|os.O_APPEND)
		if err != nil {
			o.errorf("touch: cannot touch '%s'", pathError(err, f))
			return interp.ExitStatus(1)
		}
		_ = w.Close()
	}
	return nil
}

func cmdSleep(o *cmdIO, args []string) error {
	if len(args) != 1 {
		return errors.New("usage: sleep SECONDS")
	}
	s, err := strconv.ParseFloat(strings.TrimSuffix(args[0], "s"), 64)
	if err != nil || s < 0 {
		return fmt.Errorf("invalid time interval '%s'", args[0])
	}
	t := time.NewTimer(time.Duration(s * float64(time.Second)))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-o.ctx.Done():
		return interp.ExitStatus(130)
	}
}

func cmdUname(o *cmdIO, args []string) error {
	if len(args) > 0 && args[0] == "-a" {
		fmt.Fprintf(o.stdout, "Linux %s gatehouse-dev-node #1 x86_64 GNU/Linux\n", o.c.hostname)
		return nil
	}
	fmt.Fprintln(o.stdout, "Linux")
	return nil
}

func cmdPs(o *cmdIO, _ []string) error {
	cmd := strings.Join(o.c.command, " ")
	if cmd == "" {
		cmd = "(image entrypoint)"
	}
	fmt.Fprintf(o.stdout, "  PID USER     COMMAND\n    1 nobody   %s\n", cmd)
	return nil
}

func cmdHelp(o *cmdIO, _ []string) error {
	fmt.Fprintln(o.stdout, "This pod runs on the Gatehouse dev node, which runs no images: exec and attach get a")
	fmt.Fprintln(o.stdout, "built-in POSIX shell over an in-memory filesystem with the pod's environment and its")
	fmt.Fprintln(o.stdout, "Secret, ConfigMap and emptyDir volumes. Nothing here reaches the machine it runs on.")
	fmt.Fprintln(o.stdout, "Pipes, redirections, variables, ;, && and || work. Commands:")
	for _, n := range commandNames() {
		h := "shell builtin"
		if c, ok := commands[n]; ok {
			h = c.help
		}
		fmt.Fprintf(o.stdout, "  %-9s %s\n", n, h)
	}
	return nil
}

// cmdTar supports what kubectl cp runs: `tar cf - PATH...` (optionally with -C DIR) and
// `tar xf - -C DIR` (with m, v and GNU's --no-same-* options), reading and writing the
// container's filesystem.
func cmdTar(o *cmdIO, args []string) error {
	var mode byte
	file := "-"
	dir := o.dir
	var operands []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case strings.HasPrefix(a, "--"):
			if a == "--directory" && i+1 < len(args) {
				i++
				dir = o.abs(args[i])
			} else if v, ok := strings.CutPrefix(a, "--directory="); ok {
				dir = o.abs(v)
			}
			// --no-same-owner, --no-same-permissions, ...: nothing to do here.
		case a == "-C" && i+1 < len(args):
			i++
			dir = o.abs(args[i])
		case strings.HasPrefix(a, "-") || i == 0 && len(operands) == 0 && mode == 0 && strings.ContainsAny(a, "cxt"):
			for j, f := range strings.TrimPrefix(a, "-") {
				switch f {
				case 'c', 'x', 't':
					mode = byte(f)
				case 'f':
					if i+1 < len(args) {
						i++
						file = args[i]
					}
				case 'C':
					if i+1 < len(args) {
						i++
						dir = o.abs(args[i])
					}
				case 'z', 'j':
					return errors.New("compression is not supported here")
				default:
					_ = j // v, m, p, o: accepted
				}
			}
		default:
			operands = append(operands, a)
		}
	}
	if file != "-" {
		return errors.New("only stdin and stdout archives (f -) are supported here")
	}
	switch mode {
	case 'c':
		return tarCreate(o, dir, operands)
	case 'x', 't':
		return tarExtract(o, dir, mode == 't')
	}
	return errors.New("usage: tar cf - PATH..., or tar xf - -C DIR")
}

func tarCreate(o *cmdIO, dir string, paths []string) error {
	tw := tar.NewWriter(o.stdout)
	var add func(name string) error
	add = func(name string) error {
		full := path.Join(dir, name)
		if path.IsAbs(name) {
			full = name
		}
		fi, err := o.fs.Stat(full)
		if err != nil {
			return errors.New(pathError(err, name))
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name = strings.TrimPrefix(name, "/")
		if fi.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !fi.IsDir() {
			data, err := o.fs.ReadFile(full)
			if err != nil {
				return err
			}
			_, err = tw.Write(data)
			return err
		}
		entries, err := o.fs.ReadDir(full)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := add(path.Join(name, e.Name())); err != nil {
				return err
			}
		}
		return nil
	}
	for _, p := range paths {
		if err := add(p); err != nil {
			return err
		}
	}
	return tw.Close()
}

func tarExtract(o *cmdIO, dir string, list bool) error {
	tr := tar.NewReader(o.stdin)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if list {
			fmt.Fprintln(o.stdout, hdr.Name)
			continue
		}
		// Names stay inside dir, as GNU tar keeps them (it strips leading / and refuses ..).
		name := path.Clean("/" + hdr.Name)
		target := path.Join(dir, name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := o.fs.MkdirAll(target); err != nil {
				return errors.New(pathError(err, hdr.Name))
			}
		case tar.TypeReg:
			if err := o.fs.MkdirAll(path.Dir(target)); err != nil {
				return errors.New(pathError(err, hdr.Name))
			}
			w, err := o.fs.Open(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
			if err != nil {
				return errors.New(pathError(err, hdr.Name))
			}
			if _, err := io.Copy(w, tr); err != nil {
				return err
			}
			_ = w.Close()
		default:
			o.errorf("tar: %s: links and special files are skipped here", hdr.Name)
		}
	}
}
