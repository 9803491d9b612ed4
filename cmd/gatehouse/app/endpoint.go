package app

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strconv"

	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"

	"github.com/gatehouse-dev/gatehouse/certs"
	"github.com/gatehouse-dev/gatehouse/serving"
)

// endpointOptions are the flags of the HTTPS endpoint a component serves (the proxy, the console,
// the enricher's intake, the admission webhooks) and of its serving certificate: files that are
// reloaded when they change, one the component issues itself from a CA it keeps in a Secret
// (package certs, as charts/gatehouse deploys it), or a self-signed one in development mode.
type endpointOptions struct {
	tls         serving.TLSOptions
	bindAddress string
	securePort  int
	selfManaged certs.Flags
}

func (o *endpointOptions) addFlags(fs *pflag.FlagSet, what string, port int) {
	o.tls.AddFlags(fs)
	o.selfManaged.AddFlags(fs)
	fs.StringVar(&o.bindAddress, "bind-address", "0.0.0.0", "Address to serve "+what+" on.")
	fs.IntVar(&o.securePort, "secure-port", port, "HTTPS port of "+what+".")
}

func (o *endpointOptions) address() string {
	return net.JoinHostPort(o.bindAddress, strconv.Itoa(o.securePort))
}

// validate checks where the serving certificate comes from: files, self-managed, or
// self-signed in development mode. published says whether something besides a ConfigMap
// (--self-managed-ca-configmap) tells clients a self-managed CA.
func (o *endpointOptions) validate(dev, published bool) error {
	if !o.selfManaged.Enabled() {
		o.tls.SelfSigned = dev
		return o.tls.Validate()
	}
	if o.tls.CertFile != "" {
		return errors.New("--self-managed-ca-secret and --tls-cert-file are alternatives; set one")
	}
	if !published && o.selfManaged.CAConfigMap == "" {
		return errors.New("--self-managed-ca-secret needs --self-managed-ca-configmap: clients must learn the CA")
	}
	return o.selfManaged.Validate()
}

// tlsConfig returns the endpoint's TLS configuration and adds to lc what keeps it current: the
// watcher of the certificate files, or the self-managed CA (which reaches kube-apiserver with
// lc's configuration, and publishes its bundle to its ConfigMap and to publish).
func (o *endpointOptions) tlsConfig(lc *lifecycle, publish ...func(context.Context, []byte) error) (*tls.Config, error) {
	if !o.selfManaged.Enabled() {
		cfg, watcher, err := o.tls.Config(lc.log, "localhost", "127.0.0.1")
		if err == nil && watcher != nil {
			err = lc.mgr.Add(watcher)
		}
		return cfg, err
	}
	kube := lc.mgr.GetConfig()
	cs, err := kubernetes.NewForConfig(kube)
	if err != nil {
		return nil, err
	}
	co, err := o.selfManaged.Options(cs, lc.log.With("part", "certificates"), publish...)
	if err != nil {
		return nil, err
	}
	src, err := certs.New(kube, co)
	if err != nil {
		return nil, err
	}
	lc.ready("serving-certificate", src.Ready)
	return &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}, GetCertificate: src.GetCertificate}, lc.mgr.Add(src)
}
