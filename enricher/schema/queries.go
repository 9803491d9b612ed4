package schema

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"
)

//go:embed queries/*.sql
var queryFiles embed.FS

// Query is one of the auditors' canned queries (docs/auditing.md lists them all, with the same
// text).
type Query struct {
	// Name is how the query is asked for (gatehouse sql --query NAME), e.g. "who-changed-what".
	Name string
	// Description says what the query answers.
	Description string
	// SQL is the query, reading the default database (gatehouse); Render adapts it to another.
	SQL string
	// Params are the query's parameters ({name:Type}), in order of appearance.
	Params []Param
}

// Param is a query parameter.
type Param struct {
	Name, Type string
	// Default is the value used when none is given ("24h" for a time: that long ago); a
	// parameter without one (HasDefault false) is required.
	Default    string
	HasDefault bool
}

var (
	paramRE = regexp.MustCompile(`\{([a-z_]+):([A-Za-z0-9(), ']+)\}`)
	// objectRE matches the names of the schema's tables and views qualified with the default
	// database, as the canned queries write them.
	objectRE = regexp.MustCompile(`\b` + DefaultDatabase + `\.([a-z_]+)\b`)
)

// Queries returns the canned queries, in the order of docs/auditing.md.
func Queries() ([]Query, error) {
	names, err := fs.Glob(queryFiles, "queries/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make([]Query, 0, len(names))
	for _, n := range names {
		b, err := queryFiles.ReadFile(n)
		if err != nil {
			return nil, err
		}
		base := strings.TrimSuffix(path.Base(n), ".sql")
		_, name, ok := strings.Cut(base, "_")
		if !ok {
			return nil, fmt.Errorf("schema: query file %s is not named NN_name.sql", n)
		}
		var desc, body []string
		defaults := map[string]string{}
		for line := range strings.SplitSeq(string(b), "\n") {
			if len(body) == 0 && strings.HasPrefix(line, "--") {
				text := strings.TrimSpace(strings.TrimPrefix(line, "--"))
				if d, ok := strings.CutPrefix(text, "default "); ok {
					k, v, _ := strings.Cut(d, "=")
					defaults[k] = v
					continue
				}
				desc = append(desc, text)
				continue
			}
			body = append(body, line)
		}
		q := Query{Name: name, Description: strings.Join(desc, " "), SQL: strings.TrimSpace(strings.Join(body, "\n"))}
		seen := map[string]bool{}
		for _, m := range paramRE.FindAllStringSubmatch(q.SQL, -1) {
			if !seen[m[1]] {
				seen[m[1]] = true
				d, ok := defaults[m[1]]
				q.Params = append(q.Params, Param{Name: m[1], Type: m[2], Default: d, HasDefault: ok})
			}
		}
		out = append(out, q)
	}
	return out, nil
}

// LookupQuery returns the canned query named name.
func LookupQuery(name string) (Query, error) {
	qs, err := Queries()
	if err != nil {
		return Query{}, err
	}
	var names []string
	for _, q := range qs {
		if q.Name == name {
			return q, nil
		}
		names = append(names, q.Name)
	}
	return Query{}, fmt.Errorf("schema: no canned query %q (there are: %s)", name, strings.Join(names, ", "))
}

// Render returns the query's SQL reading database instead of the default one.
func (q Query) Render(database string) (string, error) {
	o := Options{Database: database}
	if err := o.Validate(); err != nil {
		return "", err
	}
	if database == "" || database == DefaultDatabase {
		return q.SQL, nil
	}
	return objectRE.ReplaceAllString(q.SQL, database+".$1"), nil
}
