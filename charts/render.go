// Package charts renders the Helm chart charts/gatehouse into the plain manifests under
// manifests/, so that the chart is their one source of truth (`make generate` writes them, a
// test fails when they drift), and its tests prove the chart: lint, template with several
// values sets, install into a real kube-apiserver.
package charts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

const (
	// Chart is the chart's directory, relative to the repository root.
	Chart = "charts/gatehouse"
	// ManifestsValues are the values the plain manifests are rendered with.
	ManifestsValues = Chart + "/ci/manifests-values.yaml"
	// PermissionsFile holds the NATS permissions of every role (natsbus.PermissionsJSON), which
	// the chart renders an external nats-server's authorization block from: written by `make
	// generate`, so that the permissions are defined once, in Go.
	PermissionsFile = Chart + "/files/nats-permissions.json"
	// Release and Namespace are the release name and namespace of the plain manifests.
	Release   = "gatehouse"
	Namespace = "gatehouse"
)

// Header starts every rendered file; a file under manifests/ without it is written by hand (an
// example) and left alone.
const Header = "# Rendered from charts/gatehouse by `make generate` (helm template with\n" +
	"# charts/gatehouse/ci/manifests-values.yaml). Edit the chart, not this file.\n"

// auditFiles are the kube-apiserver files rendered into the audit ConfigMap, and where the plain
// manifests keep them. They configure kube-apiserver and are not cluster objects.
var auditFiles = map[string]string{
	"audit-policy.yaml":        "manifests/audit/policy.yaml",
	"audit-webhook.kubeconfig": "manifests/audit/webhook-kubeconfig.yaml",
}

var sourceLine = regexp.MustCompile(`(?m)^# Source: [^/\n]+/(.+)\n`)

// Template runs `helm template` for the chart in root with the values files and --set
// arguments, and returns its output.
func Template(ctx context.Context, helm, root string, valuesFiles []string, set ...string) ([]byte, error) {
	args := []string{"template", Release, filepath.Join(root, Chart), "--namespace", Namespace, "--include-crds"}
	for _, f := range valuesFiles {
		args = append(args, "--values", f)
	}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	cmd := exec.CommandContext(ctx, helm, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out, nil
}

// Document is one object of helm's output and the chart file it came from.
type Document struct {
	// Source is the file in the chart, e.g. templates/webhook/deployment.yaml.
	Source string
	// YAML is the document without helm's "# Source" line.
	YAML string
}

// Split splits helm's output into its documents, in order.
func Split(out []byte) ([]Document, error) {
	var (
		docs    []Document
		pending string // a source line followed by a file's own "---" (the CRD files)
	)
	for _, part := range regexp.MustCompile(`(?m)^---\n`).Split(string(out), -1) {
		if strings.TrimSpace(part) == "" {
			continue
		}
		m := sourceLine.FindStringSubmatchIndex(part)
		if m == nil {
			if pending == "" {
				return nil, fmt.Errorf("a document of helm's output names no source: %.200q", part)
			}
			docs = append(docs, Document{Source: pending, YAML: part})
			pending = ""
			continue
		}
		doc := Document{Source: part[m[2]:m[3]], YAML: part[:m[0]] + part[m[1]:]}
		if strings.TrimSpace(doc.YAML) == "" {
			pending = doc.Source
			continue
		}
		docs = append(docs, doc)
	}
	return docs, nil
}

// Render renders the plain manifests with the helm CLI at helm and returns them by path
// relative to root.
func Render(ctx context.Context, helm, root string) (map[string][]byte, error) {
	out, err := Template(ctx, helm, root, []string{filepath.Join(root, ManifestsValues)})
	if err != nil {
		return nil, err
	}
	docs, err := Split(out)
	if err != nil {
		return nil, err
	}
	files := map[string][]string{}
	var order []string
	add := func(file, doc string) {
		if _, ok := files[file]; !ok {
			order = append(order, file)
		}
		files[file] = append(files[file], strings.TrimLeft(doc, "\n"))
	}
	for _, d := range docs {
		switch {
		case strings.HasPrefix(d.Source, "crds/"):
			add(path.Join("manifests/crd", path.Base(d.Source)), d.YAML)
		case d.Source == "templates/audit/configmap.yaml":
			var cm corev1.ConfigMap
			if err := yaml.Unmarshal([]byte(d.YAML), &cm); err != nil {
				return nil, fmt.Errorf("%s: %w", d.Source, err)
			}
			for key, file := range auditFiles {
				data, ok := cm.Data[key]
				if !ok {
					return nil, fmt.Errorf("%s: no %s", d.Source, key)
				}
				add(file, data)
			}
		case strings.HasPrefix(d.Source, "templates/"):
			add(path.Join("manifests", strings.TrimPrefix(d.Source, "templates/")), d.YAML)
		default:
			return nil, fmt.Errorf("unexpected source %s", d.Source)
		}
	}
	rendered := map[string][]byte{}
	for _, f := range order {
		var b strings.Builder
		b.WriteString(Header)
		for i, doc := range files[f] {
			if i > 0 {
				b.WriteString("---\n")
			}
			b.WriteString(strings.TrimRight(doc, "\n") + "\n")
		}
		rendered[f] = []byte(b.String())
	}
	return rendered, nil
}

// Diff compares rendered with the files under root/manifests: it returns the paths whose
// content differs or is missing, and the rendered files on disk that are rendered no more.
func Diff(root string, rendered map[string][]byte) (changed, stale []string, err error) {
	for _, f := range slices.Sorted(maps.Keys(rendered)) {
		have, err := os.ReadFile(filepath.Join(root, f))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, nil, err
		}
		if !bytes.Equal(have, rendered[f]) {
			changed = append(changed, f)
		}
	}
	err = filepath.WalkDir(filepath.Join(root, "manifests"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if _, ok := rendered[rel]; ok {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.HasPrefix(data, []byte(Header)) {
			stale = append(stale, rel)
		}
		return nil
	})
	return changed, stale, err
}

// Write writes rendered under root and removes the stale rendered files.
func Write(root string, rendered map[string][]byte) error {
	changed, stale, err := Diff(root, rendered)
	if err != nil {
		return err
	}
	for _, f := range changed {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, rendered[f], 0o644); err != nil {
			return err
		}
	}
	for _, f := range stale {
		if err := os.Remove(filepath.Join(root, f)); err != nil {
			return err
		}
	}
	return nil
}
