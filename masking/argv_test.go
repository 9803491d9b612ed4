package masking

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/masking/internal/fakecreds"
)

// argvPlaces are documents with a command written as an array: each has one %s, the array.
var argvPlaces = map[string]string{
	"container args":    `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i","args":%s}]}}`,
	"exec probe":        `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i","livenessProbe":{"exec":{"command":%s}}}]}}`,
	"deployment":        `{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"d"},"spec":{"template":{"spec":{"initContainers":[{"name":"c","command":%s}]}}}}`,
	"cronjob in a list": `{"kind":"CronJobList","apiVersion":"batch/v1","metadata":{},"items":[{"metadata":{"name":"c"},"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"name":"c","command":%s}]}}}}}}]}`,
	"custom resource":   `{"kind":"Runner","apiVersion":"example.com/v1","metadata":{"name":"r"},"spec":{"steps":[{"run":%s}]}}`,
}

// maskedArgv masks the array argv, written as JSON, in each of argvPlaces and returns the masked
// array of each place.
func maskedArgv(t *testing.T, m *Masker, argv string) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	for place, doc := range argvPlaces {
		in := strings.Replace(doc, "%s", argv, 1)
		require.True(t, json.Valid([]byte(in)), in)
		out, _, err := m.JSON(nil, []byte(in), Target{})
		require.NoError(t, err, place)
		again, st, err := m.JSON(nil, out, Target{})
		require.NoError(t, err)
		assert.Equal(t, string(out), string(again), "%s: masking twice changed it", place)
		assert.Zero(t, st.Fields, place)

		var v any
		require.NoError(t, json.Unmarshal(out, &v))
		got[place] = findArray(v)
		require.NotNil(t, got[place], "%s: no array of strings in %s", place, out)
	}
	return got
}

// findArray returns the first array of strings of two or more in v.
func findArray(v any) []string {
	switch x := v.(type) {
	case map[string]any:
		for _, k := range []string{"args", "command", "run", "items", "spec", "template", "jobTemplate", "containers", "initContainers", "livenessProbe", "exec", "steps"} {
			if a := findArray(x[k]); a != nil {
				return a
			}
		}
	case []any:
		words := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				words = append(words, s)
			} else if _, ok := e.(map[string]any); !ok {
				if _, ok := e.([]any); !ok {
					words = append(words, "<literal>")
				}
			}
		}
		if len(words) == len(x) && len(words) >= 2 {
			return words
		}
		for _, e := range x {
			if a := findArray(e); a != nil {
				return a
			}
		}
	}
	return nil
}

// TestArgvMaskedAsCommandLine: a command written as an array is masked as the command line its
// words make: the password a command takes as a plain argument (mysql -pS3cret, sshpass -p,
// htpasswd -b, curl -u, redis-cli -a …), which no word shows read alone, is masked in its word,
// and the other words stay as they are.
func TestArgvMaskedAsCommandLine(t *testing.T) {
	tests := []struct {
		name string
		argv []string // words; the masked ones hold <<P:…>> markers
	}{
		{"mysql -p", []string{"mysql", "-uroot", "-p<<P:S3cretPw9>>", "-e", "SELECT 1"}},
		{"mysqladmin probe", []string{"mysqladmin", "ping", "-h", "127.0.0.1", "-uroot", "-p<<P:S3cretPw9>>"}},
		{"a command by its path", []string{"/usr/bin/mysql", "--user=root", "-p<<P:S3cretPw9>>"}},
		{"a command after env", []string{"env", "TZ=UTC", "mysql", "-p<<P:S3cretPw9>>"}},
		{"sshpass", []string{"sshpass", "-p", "<<P:S3cretPw9>>", "ssh", "backup@db"}},
		{"redis-cli", []string{"redis-cli", "-h", "redis", "-a", "<<P:S3cretPw9>>", "ping"}},
		{"curl user", []string{"curl", "-fsS", "-u", "admin:<<P:S3cretPw9>>", "http://grafana:3000/api/health"}},
		{"htpasswd", []string{"htpasswd", "-b", "/etc/nginx/.htpasswd", "admin", "<<P:S3cretPw9>>"}},
		{"htpasswd bundled flags", []string{"htpasswd", "-nbB", "admin", "<<P:S3cretPw9>>"}},
		{"openssl -k", []string{"openssl", "enc", "-aes-256-cbc", "-k", "<<P:S3cretPw9>>", "-in", "f"}},
		{"rclone config", []string{"rclone", "config", "create", "r", "s3", "secret_access_key", "<<P:S3cretPw9xyz>>"}},
		{"rclone obscure", []string{"rclone", "obscure", "<<P:S3cretPw9>>"}},
		{"docker login -p", []string{"docker", "login", "-u", "ci", "-p", "<<P:S3cretPw9>>", "registry.example.com"}},
		{"a word with a blank", []string{"htpasswd", "-b", "/etc/x", "admin", "<<P:correct horse 9>>"}},
		{"java property", []string{"java", "-Dspring.datasource.password=<<P:S3cretPw9>>", "-jar", "app.jar"}},
	}
	m := newMasker(t, Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := make([]string, len(tt.argv))
			in := make([]string, len(tt.argv))
			for i, w := range tt.argv {
				want[i] = expand(w)
				in[i] = markerRE.ReplaceAllString(w, "$2")
			}
			argv, err := json.Marshal(in)
			require.NoError(t, err)
			for place, got := range maskedArgv(t, m, string(argv)) {
				assert.Equal(t, want, got, place)
			}
			// As a command line, the words are masked the same.
			line, _ := m.Text(nil, []byte(strings.Join(quoteWords(in, in), " ")))
			assert.Equal(t, strings.Join(quoteWords(want, in), " "), string(line))
		})
	}
}

// quoteWords quotes the words whose unmasked words in have a blank, as a shell reads them.
func quoteWords(words, in []string) []string {
	out := make([]string, len(words))
	for i, w := range words {
		if strings.ContainsAny(in[i], " \t") {
			w = "'" + w + "'"
		}
		out[i] = w
	}
	return out
}

// TestArgvBypasses tries to get a command's password through by how its array is written. No
// shell splits an array's words: bytes a shell reads as syntax inside a word (quotes, ; | &,
// a form feed) are part of the password, and words before it that hold them do not end the
// command.
func TestArgvBypasses(t *testing.T) {
	long := strings.Repeat("x", maxArgvWord+1)
	tests := map[string]struct{ argv, secret string }{
		"escaped letters":          {`["my\u0073ql","-uroot","-\u0070S3cretPw9"]`, "S3cretPw9"},
		"escaped dash and slash":   {`["\/usr\/bin\/mysql","\u002dpS3cretPw9"]`, "S3cretPw9"},
		"a number among the words": {`["redis-cli","-p",6379,"-a","S3cretPw9"]`, "S3cretPw9"},
		"literals among the words": {`["redis-cli",true,null,"-a","S3cretPw9"]`, "S3cretPw9"},
		"an empty word":            {`["redis-cli","","-a","S3cretPw9"]`, "S3cretPw9"},
		"a word with quotes":       {`["sh","it's \"quoted\"","redis-cli","-a","S3cretPw9"]`, "S3cretPw9"},
		"blank around the words":   {"[ \"redis-cli\" ,\n\t\"-a\" , \"S3cretPw9\" ]", "S3cretPw9"},
		"a shell operator word":    {`["true",";","redis-cli","-a","S3cretPw9"]`, "S3cretPw9"},
		"a semicolon in it":        {`["mysql","-pS3cr;etPw9"]`, "S3cr;etPw9"},
		"a quote first":            {`["redis-cli","-a","'S3cretPw9"]`, "'S3cretPw9"},
		"a pipe and an ampersand":  {`["sshpass","-p","S3|cr&etPw9","ssh","h"]`, "S3|cr&etPw9"},
		"a form feed":              {`["mysql","-pS3cr\fetPw9"]`, "S3cr\fetPw9"},
		"blanks and both quotes":   {`["htpasswd","-b","f","u","pa ss'wo\"rd$9"]`, "pa ss'wo\"rd$9"},
		"quotes and a blank":       {`["redis-cli","-a","S3cr'et \"Pw9"]`, "S3cr'et \"Pw9"},
		"a semicolon before":       {`["mysql","-e","SELECT 1;","-pS3cretPw9"]`, "S3cretPw9"},
		"a pipe before":            {`["mysql","--host=a|b","-pS3cretPw9"]`, "S3cretPw9"},
		"a newline before":         {`["redis-cli","-h","x\ny","-a","S3cretPw9"]`, "S3cretPw9"},
		"a long word before":       {`["curl","` + long + `","-u","admin:S3cretPw9"]`, "S3cretPw9"},
		"a number first":           {`[1,"redis-cli","-a","S3cretPw9"]`, "S3cretPw9"},
		"null first":               {`[null,"redis-cli","-a","S3cretPw9"]`, "S3cretPw9"},
	}
	m := newMasker(t, Config{})
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			secret := tt.secret
			for place, got := range maskedArgv(t, m, tt.argv) {
				joined := strings.Join(got, " ")
				for _, piece := range strings.FieldsFunc(secret, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
					if len(piece) >= 3 {
						assert.NotContains(t, joined, piece, place)
					}
				}
				assert.Contains(t, joined, expand("<<P:"+secret+">>"), place)
			}
		})
	}
}

// TestArgvStays: arrays of strings that are no command with a password stay as they are.
func TestArgvStays(t *testing.T) {
	long := make([]string, 300)
	for i := range long {
		long[i] = "--flag-" + strings.Repeat("x", i%7)
	}
	longArgv, err := json.Marshal(long)
	require.NoError(t, err)
	tests := map[string]string{
		"verbs":                 `["get","list","watch","create","update","patch","delete"]`,
		"resources":             `["secrets","tokenreviews","serviceaccounts/token"]`,
		"finalizers":            `["kubernetes.io/pvc-protection","foregroundDeletion"]`,
		"flags and files":       `["--port=8080","--log-level=info","--token-file","/var/run/secrets/token","--secret-name","db-creds"]`,
		"kubeconfig flags":      `["--kubeconfig","/etc/kubernetes/admin.conf","--authentication-token-webhook","--authorization-mode=Webhook"]`,
		"a shell script":        `["/bin/sh","-c","echo hello; sleep 3600"]`,
		"password from the env": `["mysql","-uroot","-p$(MYSQL_ROOT_PASSWORD)","-h","db"]`,
		"password from a file":  `["sh","-c","redis-cli -a \"$(cat /run/secrets/pw)\" ping"]`,
		"prompting -p":          `["mysql","-uroot","-p","-h","db"]`,
		"curl with references":  `["curl","-fsS","-u","$(ES_USER):$(ES_PASSWORD)","http://es:9200/_cluster/health"]`,
		"words and an object":   `["redis-cli",{"a":"-a"},"S3cretPw9"]`,
		"many words":            string(longArgv),
	}
	m := newMasker(t, Config{})
	for name, argv := range tests {
		t.Run(name, func(t *testing.T) {
			for place, doc := range argvPlaces {
				in := strings.Replace(doc, "%s", argv, 1)
				out, st, err := m.JSON(nil, []byte(in), Target{})
				require.NoError(t, err)
				assert.Equal(t, in, string(out), place)
				assert.Zero(t, st.Fields, place)
			}
		})
	}
}

// TestArgvOfAPassword: an array under a secret-sounding key is hidden word by word, as before.
func TestArgvOfAPassword(t *testing.T) {
	m := newMasker(t, Config{})
	in := `{"kind":"Runner","apiVersion":"example.com/v1","metadata":{"name":"r"},"spec":{"passwords":["S3cretPw9","Hunter2pw"]}}`
	out, st, err := m.JSON(nil, []byte(in), Target{})
	require.NoError(t, err)
	assert.Equal(t, expand(`{"kind":"Runner","apiVersion":"example.com/v1","metadata":{"name":"r"},"spec":{"passwords":["<<P:S3cretPw9>>","<<P:Hunter2pw>>"]}}`), string(out))
	assert.Equal(t, 2, st.Fields)
}

// FuzzArgv masks arrays of words the fuzzer chooses: no panic, valid output, masking twice
// changes nothing, and a word that changed holds a placeholder.
func FuzzArgv(f *testing.F) {
	for _, s := range []string{"mysql\x00-uroot\x00-pS3cretPw9", "sshpass\x00-p\x00S3cretPw9\x00ssh", "redis-cli\x00\x00-a\x00it's \"x\"",
		"curl\x00-u\x00a:b c\x00http://x", "htpasswd\x00-nb\x00u\x00p w\x00\\\x00$(x)",
		"sshpass -p\x0000000000 "} { // a finding cut to its word is a placeholder the second time
		f.Add(s)
	}
	m := newMasker(f, Config{})
	f.Fuzz(func(t *testing.T, data string) {
		words := strings.Split(data, "\x00")
		argv, err := json.Marshal(words)
		require.NoError(t, err)
		doc := strings.Replace(argvPlaces["container args"], "%s", string(argv), 1)
		out, _, err := m.JSON(nil, []byte(doc), Target{})
		require.NoError(t, err)
		again, _, err := m.JSON(nil, out, Target{})
		require.NoError(t, err)
		require.Equal(t, string(out), string(again), "masking twice changed it")
		var pod struct {
			Spec struct {
				Containers []struct{ Args []string } `json:"containers"`
			} `json:"spec"`
		}
		require.NoError(t, json.Unmarshal(out, &pod), "%s", out)
		got := pod.Spec.Containers[0].Args
		require.NoError(t, json.Unmarshal(argv, &words)) // as JSON holds them: valid UTF-8
		require.Len(t, got, len(words))
		for i, w := range got {
			if w != words[i] {
				require.Contains(t, w, PlaceholderPrefix, "word %d %q", i, words[i])
			}
		}
	})
}

// TestArgvRestore: a Deployment read through Gatehouse with a command's password masked in its
// word, and written back, gets the password back in that word; the word's placeholder written
// into another word is refused.
func TestArgvRestore(t *testing.T) {
	m := newMasker(t, Config{})
	stored := `{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"shop","namespace":"shop"},"spec":{"template":{"spec":{"containers":[{"name":"shop","image":"shop:1","command":["mysqladmin","ping","-uroot","-pcanary-argv-Pw9","-h","db"]}]}}}}`
	command := func(o map[string]any) []any {
		return o["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["command"].([]any)
	}

	read := maskedJSON(t, m, []byte(stored), deploymentTarget)
	requireNoCanary(t, mustJSON(t, read))
	assert.Equal(t, expand("-p<<P:canary-argv-Pw9>>"), command(read)[3])
	read["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["image"] = "shop:2"
	r, err := m.Restore(mustJSON(t, read), []byte(stored), deploymentTarget)
	require.NoError(t, err)
	assert.Equal(t, 1, r.Values)
	var out map[string]any
	require.NoError(t, json.Unmarshal(r.Object, &out))
	assert.Equal(t, []any{"mysqladmin", "ping", "-uroot", "-pcanary-argv-Pw9", "-h", "db"}, command(out))

	moved := maskedJSON(t, m, []byte(stored), deploymentTarget)
	cmd := command(moved)
	cmd[5] = cmd[3] // into the host's word
	_, err = m.Restore(mustJSON(t, moved), []byte(stored), deploymentTarget)
	require.ErrorIs(t, err, ErrPlaceholderMoved)
}

// TestArgvOfEveryCommandFormat: each command line of the Fake credentials whose detector reads
// a command's words, split into its words as a shell splits it and written as a container's
// command, leaks nothing, in each of argvPlaces.
func TestArgvOfEveryCommandFormat(t *testing.T) {
	m := newMasker(t, Config{})
	command := map[string]bool{}
	for id, name := range m.names {
		if d := m.eng.dets[id]; d != nil && d.command {
			command[name] = true
		}
	}
	n := 0
	for i, f := range fakecreds.Formats() {
		if !command[f.Detector] {
			continue
		}
		if fk := f.Gen(fakecreds.NewGen(uint64(1000 * i))); strings.Contains(fk.Value, "\n") {
			continue // a file (redis.conf), not a command line
		}
		n++
		t.Run(f.Name, func(t *testing.T) {
			fk := f.Gen(fakecreds.NewGen(uint64(1000 * i)))
			argv, err := json.Marshal(shellWords(fk.Value))
			require.NoError(t, err)
			for place, doc := range argvPlaces {
				out, st, err := m.JSON(nil, []byte(strings.Replace(doc, "%s", string(argv), 1)), Target{})
				require.NoError(t, err)
				assert.Empty(t, fakecreds.Leaked(out, fk), "%s: %s", place, out)
				assert.Positive(t, st.Fields, place)
			}
		})
	}
	require.GreaterOrEqual(t, n, 10, "the command formats of the Fake credentials")
}

// shellWords splits a command line into its words as a shell does, for the command lines of
// the Fake credentials: blanks split words, quotes group them.
func shellWords(line string) []string {
	var words []string
	var w strings.Builder
	in, quote := false, byte(0)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			w.WriteByte(c)
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == ' ' || c == '\t' || c == '\n':
			if in {
				words = append(words, w.String())
				w.Reset()
			}
			in = false
		default:
			w.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, w.String())
	}
	return words
}

// TestArgvCommandAndArgs: a container's command line is its command's words, then its args':
// a password in args is masked by the command it is given to, in either order of the members.
func TestArgvCommandAndArgs(t *testing.T) {
	pod := func(members string) string {
		return `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i",` + members + `}]}}`
	}
	tests := []struct{ name, in, want string }{
		{"mysql", `"command":["mysql"],"args":["-uroot","-pS3cretPw9"]`, `"command":["mysql"],"args":["-uroot","-p<<P:S3cretPw9>>"]`},
		{"one word of args", `"command":["mysql"],"args":["-pS3cretPw9"]`, `"command":["mysql"],"args":["-p<<P:S3cretPw9>>"]`},
		{"the flag in the command", `"command":["redis-cli","-a"],"args":["S3cretPw9","ping"]`, `"command":["redis-cli","-a"],"args":["<<P:S3cretPw9>>","ping"]`},
		{"args first", `"args":["-a","S3cretPw9","ping"],"workingDir":"/","command":["redis-cli"]`, `"args":["-a","<<P:S3cretPw9>>","ping"],"workingDir":"/","command":["redis-cli"]`},
		{"members between", `"command":["sshpass"],"env":[{"name":"A","value":"b"}],"args":["-p","S3cretPw9","ssh","h"]`, `"command":["sshpass"],"env":[{"name":"A","value":"b"}],"args":["-p","<<P:S3cretPw9>>","ssh","h"]`},
		{"a shell's script", `"command":["sh","-c"],"args":["mysql -uroot -pS3cretPw9"]`, `"command":["sh","-c"],"args":["mysql -uroot -p<<P:S3cretPw9>>"]`},
		{"no password", `"command":["mysql"],"args":["-uroot","-p$(MYSQL_ROOT_PASSWORD)","-h","db"]`, ""},
		{"another object's command", `"command":["redis-cli"],"lifecycle":{"preStop":{"exec":{"args":["-a","S3cretPw9"]}}}`, ""},
	}
	m := newMasker(t, Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.in
			if tt.want != "" {
				want = expand(tt.want)
			}
			out, st, err := m.JSON(nil, []byte(pod(tt.in)), Target{})
			require.NoError(t, err)
			assert.Equal(t, pod(want), string(out))
			assert.Equal(t, tt.want != "", st.Fields > 0)
		})
	}
}

// TestYAMLCommands: a command written in text as a YAML sequence of words (a manifest in a
// ConfigMap, a Helm release's manifest, kubectl get -o yaml printed in a terminal) is read as its
// command line, and the args of a mapping after its command.
func TestYAMLCommands(t *testing.T) {
	tests := []detectorCase{
		{name: "block sequence", in: "spec:\n  containers:\n  - name: db\n    image: mysql:8\n    command:\n    - mysqladmin\n    - ping\n    - -uroot\n    - -pS3cretPw9\n",
			want: "spec:\n  containers:\n  - name: db\n    image: mysql:8\n    command:\n    - mysqladmin\n    - ping\n    - -uroot\n    - -p<<P:S3cretPw9>>\n", dets: []string{"mysql-password-flag"}},
		{name: "flow sequence", in: "    command: [\"redis-cli\", \"-a\", \"S3cretPw9\", \"ping\"]\n",
			want: "    command: [\"redis-cli\", \"-a\", \"<<P:S3cretPw9>>\", \"ping\"]\n", dets: []string{"redis-password"}},
		{name: "args after command", in: "    command:\n      - mysql\n    env:\n      - name: A\n        value: b\n    args:\n      - -uroot\n      - '-pS3cretPw9'\n",
			want: "    command:\n      - mysql\n    env:\n      - name: A\n        value: b\n    args:\n      - -uroot\n      - '-p<<P:S3cretPw9>>'\n", dets: []string{"mysql-password-flag"}},
		{name: "flow args after flow command", in: "command: [sshpass]\nargs: [-p, S3cretPw9, ssh, backup@db]\n",
			want: "command: [sshpass]\nargs: [-p, <<P:S3cretPw9>>, ssh, backup@db]\n", dets: []string{"password-flag-value"}},
		{name: "comments and blank lines", in: "command:\n- sshpass\n\n# the password\n- -p\n- S3cretPw9 # not here\n- ssh\n",
			want: "command:\n- sshpass\n\n# the password\n- -p\n- <<P:S3cretPw9>> # not here\n- ssh\n", dets: []string{"password-flag-value"}},
		{name: "a list item's first key", in: "containers:\n- command:\n  - mysql\n  - -pXk9vQ2mLp\n  name: c\n- command: [redis-cli, -a, Xk9vQ2mLp]\n",
			want: "containers:\n- command:\n  - mysql\n  - -p<<P:Xk9vQ2mLp>>\n  name: c\n- command: [redis-cli, -a, <<P:Xk9vQ2mLp>>]\n", dets: []string{"mysql-password-flag", "redis-password"}},
		{name: "args before command", in: "- name: c\n  args:\n  - -w\n  - Xk9vQ2mLp\n  command:\n  - ldapsearch\n",
			want: "- name: c\n  args:\n  - -w\n  - <<P:Xk9vQ2mLp>>\n  command:\n  - ldapsearch\n", dets: []string{"ldap-password"}},
		// What stays.
		{name: "another container's command", in: "containers:\n- name: a\n  command: [mysql]\n- name: b\n  args: [-uroot, -pS3cretPw9]\n"},
		{name: "words that are no command", in: "verbs: [get, list, watch]\nresources:\n- secrets\n- tokenreviews\nfinalizers:\n- kubernetes.io/pvc-protection\n"},
		{name: "a list of mappings", in: "command:\n- name: mysql\n- -pS3cretPw9\n"},
		{name: "a reference", in: "command: [mysql, -uroot, '-p$(MYSQL_ROOT_PASSWORD)']\n"},
	}
	checkDetectorCases(t, tests)
}

// FuzzYAMLCommands masks texts of YAML sequences the fuzzer varies: no panic, and masking twice
// changes nothing.
func FuzzYAMLCommands(f *testing.F) {
	for _, s := range []string{
		"command:\n- mysql\n- -pS3cretPw9\n", "command: [redis-cli, -a, 'S3cret Pw9']\nargs: [x]\n",
		"  command:\n  - sshpass\n\n  # c\n  - -p\n  - S3cretPw9 # c\n  args:\n  - -u\n", "command: [\"a\", 'b', c d, -pX]\n- - x\n",
	} {
		f.Add(s)
	}
	m := newMasker(f, Config{})
	f.Fuzz(func(t *testing.T, text string) {
		out, _ := m.Text(nil, []byte(text))
		again, st := m.Text(nil, out)
		if !bytes.Equal(out, again) || st.Fields != 0 {
			t.Fatalf("masking twice changed %q: %q -> %q", text, out, again)
		}
	})
}

// TestArgvDocuments: an array of words that is a document of its own (a ConfigMap value that
// holds a command as JSON, a body that is an array) is read as a command too.
func TestArgvDocuments(t *testing.T) {
	m := newMasker(t, Config{})
	tests := []struct{ name, in, want string }{
		{"in a string", `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"a"},"data":{"cmd":"[\"redis-cli\",\"-a\",\"S3cretPw9\"]"}}`,
			`{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"a"},"data":{"cmd":"[\"redis-cli\",\"-a\",\"<<P:S3cretPw9>>\"]"}}`},
		{"a body", `["sshpass","-p","S3cretPw9","ssh","h"]`, `["sshpass","-p","<<P:S3cretPw9>>","ssh","h"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, st, err := m.JSON(nil, []byte(tt.in), Target{})
			require.NoError(t, err)
			assert.Equal(t, expand(tt.want), string(out))
			assert.Equal(t, 1, st.Fields)
		})
	}
}
