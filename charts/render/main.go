// Command render writes the NATS permissions the chart reads (charts.PermissionsFile, from
// natsbus) and the plain manifests under manifests/ from charts/gatehouse with the helm CLI
// (make generate). With -check it only reports files that differ.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gatehouse-dev/gatehouse/charts"
	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

func main() {
	check := flag.Bool("check", false, "Report the manifests that differ from the chart's rendering and fail, writing nothing.")
	flag.Parse()
	if err := run(*check); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

func run(check bool) error {
	helm, err := testbed.Helm()
	if err != nil {
		return err
	}
	root, err := testbed.RepoRoot()
	if err != nil {
		return err
	}
	permissions, err := natsbus.PermissionsJSON()
	if err != nil {
		return err
	}
	permissionsFile := filepath.Join(root, charts.PermissionsFile)
	if check {
		if old, err := os.ReadFile(permissionsFile); err != nil || !bytes.Equal(old, permissions) {
			return fmt.Errorf("%s differs from natsbus's permissions (run make generate)", charts.PermissionsFile)
		}
	} else if err := os.WriteFile(permissionsFile, permissions, 0o644); err != nil {
		return err
	}
	rendered, err := charts.Render(context.Background(), helm, root)
	if err != nil {
		return err
	}
	if !check {
		return charts.Write(root, rendered)
	}
	changed, stale, err := charts.Diff(root, rendered)
	if err != nil {
		return err
	}
	if len(changed)+len(stale) > 0 {
		return fmt.Errorf("manifests differ from the chart (run make generate): changed %v, stale %v", changed, stale)
	}
	return nil
}
