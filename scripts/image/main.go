// Command image builds Gatehouse's container image without a Docker engine (make image): the
// static gatehouse binary on a base assembled from nothing but files it writes itself (a
// passwd and group with a non-root user, CA certificates from the Go module
// golang.org/x/crypto/x509roots/fallback), as an OCI image layout and a tarball that docker
// load, podman load or crane push accept. The same binary gives the same image, byte for byte.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	var o Options
	flag.StringVar(&o.Binary, "binary", "bin/gatehouse", "The gatehouse binary, statically linked (CGO_ENABLED=0) for linux.")
	flag.StringVar(&o.Repository, "repository", DefaultRepository, "The image's repository, named in the tarball and the layout's annotations.")
	flag.StringVar(&o.Version, "version", "dev", "The image tag and org.opencontainers.image.version label.")
	layout := flag.String("layout", "bin/image", "Directory to write the OCI image layout to (replaced).")
	tarball := flag.String("tarball", "bin/gatehouse-image.tar", "File to write the image tarball to; empty: none.")
	flag.Parse()
	img, err := Build(o)
	if err == nil {
		err = WriteLayout(*layout, img, o)
	}
	if err == nil && *tarball != "" {
		err = WriteTarball(*tarball, img, o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	digest, _ := img.Digest()
	fmt.Printf("%s:%s %s\n  OCI layout: %s\n", o.Repository, o.Version, digest, *layout)
	if *tarball != "" {
		fmt.Printf("  tarball:    %s\n", *tarball)
	}
}
