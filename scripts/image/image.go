package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

const (
	// DefaultRepository is where the chart pulls the image from.
	DefaultRepository = "ghcr.io/gatehouse-dev/gatehouse"
	// Entrypoint is the binary's path in the image.
	Entrypoint = "/usr/local/bin/gatehouse"
	// User is the non-root user and group the image runs as (distroless's "nonroot").
	User = "65532:65532"
	// CABundle is the path of the CA certificates (SSL_CERT_FILE).
	CABundle = "/etc/ssl/certs/ca-certificates.crt"
)

// epoch is every timestamp in the image, so that it is reproducible.
var epoch = time.Unix(0, 0).UTC()

// Options say what to build.
type Options struct {
	// Binary is the gatehouse binary: static, for linux/amd64 or linux/arm64.
	Binary string
	// Repository and Version name the image. Defaults: DefaultRepository, "dev".
	Repository, Version string
}

func (o *Options) setDefaults() {
	if o.Repository == "" {
		o.Repository = DefaultRepository
	}
	if o.Version == "" {
		o.Version = "dev"
	}
}

// Build returns the image: a base layer (users, CA certificates, writable-directory
// placeholders) and the binary's layer, running the binary as a non-root user.
func Build(o Options) (v1.Image, error) {
	o.setDefaults()
	arch, err := checkBinary(o.Binary)
	if err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(o.Binary)
	if err != nil {
		return nil, err
	}
	base, err := layer(baseFiles())
	if err != nil {
		return nil, err
	}
	app, err := layer([]file{{path: "usr/", dir: true, mode: 0o755}, {path: "usr/local/", dir: true, mode: 0o755},
		{path: "usr/local/bin/", dir: true, mode: 0o755}, {path: Entrypoint[1:], mode: 0o755, data: bin}})
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1),
		mutate.Addendum{Layer: base, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "gatehouse image: users, CA certificates", Comment: "base"}},
		mutate.Addendum{Layer: app, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "gatehouse image: " + Entrypoint}},
	)
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: epoch}
	cf.Config = v1.Config{
		Entrypoint: []string{Entrypoint},
		User:       User,
		WorkingDir: "/home/nonroot",
		Env:        []string{"PATH=/usr/local/bin", "SSL_CERT_FILE=" + CABundle, "HOME=/home/nonroot"},
		Labels: map[string]string{
			"org.opencontainers.image.title":    "gatehouse",
			"org.opencontainers.image.source":   "https://github.com/gatehouse-dev/gatehouse",
			"org.opencontainers.image.version":  o.Version,
			"org.opencontainers.image.licenses": "Apache-2.0",
		},
	}
	return mutate.ConfigFile(img, cf)
}

// WriteLayout writes img as an OCI image layout in dir, replacing what is there.
func WriteLayout(dir string, img v1.Image, o Options) error {
	o.setDefaults()
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": o.Version,
		"io.containerd.image.name":          o.Repository + ":" + o.Version,
	}))
}

// WriteTarball writes img as a tarball for docker load, podman load or crane push.
func WriteTarball(path string, img v1.Image, o Options) error {
	o.setDefaults()
	ref, err := name.NewTag(o.Repository + ":" + o.Version)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(path, ref, img)
}

// checkBinary refuses a binary that would not run on the image's empty base: one that is not a
// linux executable or needs a dynamic loader. It returns the image architecture.
func checkBinary(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s: not a linux executable: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("%s is dynamically linked; build it with CGO_ENABLED=0", path)
		}
	}
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64", nil
	case elf.EM_AARCH64:
		return "arm64", nil
	default:
		return "", fmt.Errorf("%s: unsupported machine %s", path, f.Machine)
	}
}

// file is an entry of a layer.
type file struct {
	path     string // relative, directories end in "/"
	dir      bool
	mode     int64
	uid, gid int
	data     []byte
}

// baseFiles are the base layer: what a static Go binary needs from a root file system.
func baseFiles() []file {
	return []file{
		{path: "etc/", dir: true, mode: 0o755},
		{path: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{path: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{path: "etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
		{path: "etc/ssl/", dir: true, mode: 0o755},
		{path: "etc/ssl/certs/", dir: true, mode: 0o755},
		{path: CABundle[1:], mode: 0o644, data: caCertificates()},
		{path: "home/", dir: true, mode: 0o755},
		{path: "home/nonroot/", dir: true, mode: 0o700, uid: 65532, gid: 65532},
		{path: "root/", dir: true, mode: 0o700},
		// A mount point: with a read-only root file system, mount an emptyDir here if /tmp is
		// needed (Gatehouse writes nothing to disk).
		{path: "tmp/", dir: true, mode: 0o1777},
	}
}

// caCertificates are the Mozilla roots of golang.org/x/crypto/x509roots/fallback, PEM. Roots
// with constraints PEM cannot express (distrusted after a date) are left out.
func caCertificates() []byte {
	var b bytes.Buffer
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate})
	}
	return b.Bytes()
}

// layer builds an OCI layer of files, with fixed timestamps and owners.
func layer(files []file) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.path, Mode: f.mode, Uid: f.uid, Gid: f.gid, ModTime: epoch, Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	if len(data) == 0 {
		return nil, errors.New("empty layer")
	}
	// Each digest, layout and tarball reads the compressed layer: compress it once.
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
}
