package main

import (
	"archive/tar"
	"crypto/x509"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

// TestImage builds the image as make image does, reads it back from its OCI layout, checks its
// entrypoint and user, extracts its file system and runs the binary inside.
func TestImage(t *testing.T) {
	root, err := testbed.RepoRoot()
	require.NoError(t, err)
	// The flags of make build and make image: the compiled packages are shared with bin/gatehouse.
	bin := filepath.Join(t.TempDir(), "gatehouse")
	build := exec.CommandContext(t.Context(), "go", "build", "-trimpath", "-tags", "gatehouse_noclickhouse", "-o", bin, "./cmd/gatehouse")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	o := Options{Binary: bin, Version: "v0.0.0-test"}
	img, err := Build(o)
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, WriteLayout(filepath.Join(dir, "layout"), img, o))
	require.NoError(t, WriteTarball(filepath.Join(dir, "image.tar"), img, o))

	again, err := Build(o)
	require.NoError(t, err)
	d1, err := img.Digest()
	require.NoError(t, err)
	d2, err := again.Digest()
	require.NoError(t, err)
	assert.Equal(t, d1, d2, "the same binary gives the same image")

	// Read back what was written, as a registry client or runtime would.
	idx, err := layout.ImageIndexFromPath(filepath.Join(dir, "layout"))
	require.NoError(t, err)
	manifest, err := idx.IndexManifest()
	require.NoError(t, err)
	require.Len(t, manifest.Manifests, 1)
	img, err = idx.Image(manifest.Manifests[0].Digest)
	require.NoError(t, err)
	// The tarball's manifest is Docker's format; its config and layers are the same.
	fromTar, err := tarball.ImageFromPath(filepath.Join(dir, "image.tar"), nil)
	require.NoError(t, err)
	for _, i := range []v1.Image{img, fromTar} {
		cn, err := i.ConfigName()
		require.NoError(t, err)
		want, err := again.ConfigName()
		require.NoError(t, err)
		assert.Equal(t, want, cn, "the layout and the tarball hold the image built")
	}

	cf, err := img.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, []string{"/usr/local/bin/gatehouse"}, cf.Config.Entrypoint)
	assert.Equal(t, "65532:65532", cf.Config.User, "runs as the non-root user")
	assert.Equal(t, "linux", cf.OS)
	assert.Contains(t, cf.Config.Env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt")
	assert.Equal(t, int64(0), cf.Created.Unix(), "no build time in the image")

	// The file system, as a runtime unpacks it.
	rootfs := filepath.Join(dir, "rootfs")
	rd := mutate.Extract(img)
	defer rd.Close()
	modes := extract(t, rd, rootfs)
	assert.Equal(t, os.FileMode(0o755), modes["usr/local/bin/gatehouse"], "executable, not writable by the user")
	passwd, err := os.ReadFile(filepath.Join(rootfs, "etc", "passwd"))
	require.NoError(t, err)
	assert.Contains(t, string(passwd), "nonroot:x:65532:65532:")
	cas, err := os.ReadFile(filepath.Join(rootfs, "etc", "ssl", "certs", "ca-certificates.crt"))
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(cas))
	assert.Greater(t, strings.Count(string(cas), "BEGIN CERTIFICATE"), 100, "the public roots")

	out, err = exec.CommandContext(t.Context(), filepath.Join(rootfs, "usr", "local", "bin", "gatehouse"), "version").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.True(t, strings.HasPrefix(string(out), "gatehouse "), "%s", out)
}

// TestBuildRefusesDynamicBinaries: a binary that needs a dynamic loader would not start on the
// image's empty base.
func TestBuildRefusesDynamicBinaries(t *testing.T) {
	sh, err := exec.LookPath("sh")
	require.NoError(t, err)
	sh, err = filepath.EvalSymlinks(sh)
	require.NoError(t, err)
	_, err = Build(Options{Binary: sh, Version: "v0"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "dynamically linked")

	_, err = Build(Options{Binary: filepath.Join(t.TempDir(), "missing"), Version: "v0"})
	require.Error(t, err)
}

// extract unpacks a flattened image file system into dir and returns each file's mode.
func extract(t *testing.T, r io.Reader, dir string) map[string]os.FileMode {
	t.Helper()
	modes := map[string]os.FileMode{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return modes
		}
		require.NoError(t, err)
		p := filepath.Join(dir, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			require.NoError(t, os.MkdirAll(p, 0o755))
		case tar.TypeReg:
			require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o700)
			require.NoError(t, err)
			_, err = io.Copy(f, tr)
			require.NoError(t, errors.Join(err, f.Close()))
		}
		modes[strings.TrimSuffix(h.Name, "/")] = os.FileMode(h.Mode).Perm()
	}
}
