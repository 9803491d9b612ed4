package app

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/gatehouse-dev/gatehouse/certs"
)

// Serving certificates issued by the components themselves (package certs) and the webhook's
// registration of its configurations (package registration), as charts/gatehouse deploys them.

// validateCertificates checks the serving certificate's source: files (--cert-dir,
// --tls-cert-file), self-managed, or self-signed in development mode; and the registration.
func (o *webhookOptions) validateCertificates() error {
	if err := o.register.Validate(o.selfManaged.Enabled()); err != nil {
		return err
	}
	if !o.selfManaged.Enabled() {
		return o.tls.Validate()
	}
	if o.tls.CertFile != "" {
		return errors.New("--self-managed-ca-secret and --cert-dir/--tls-cert-file are alternatives; set one")
	}
	if !o.register.Enabled() && o.selfManaged.CAConfigMap == "" {
		return errors.New("--self-managed-ca-secret needs --webhook-configurations or --self-managed-ca-configmap: kube-apiserver must learn the CA")
	}
	return o.selfManaged.Validate()
}

// setupWebhookCertificates adds the self-managed serving certificate (--self-managed-ca-secret)
// and the registration of the webhook configurations (--webhook-configurations) to mgr.
// *tlsCfg is the configuration the webhook server serves with; for a self-managed certificate
// it is set here. ready says whether the webhook can decide.
func setupWebhookCertificates(mgr ctrl.Manager, cfg *rest.Config, o *webhookOptions, log *slog.Logger, tlsCfg **tls.Config, ready func(context.Context) error) error {
	var publish []func(context.Context, []byte) error
	if o.register.Enabled() {
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return err
		}
		r, err := o.register.New(cs, log.With("part", "registration"), ready)
		if err != nil {
			return err
		}
		if err := mgr.Add(r); err != nil {
			return err
		}
		publish = append(publish, r.SetCABundle)
	}
	if !o.selfManaged.Enabled() {
		return nil
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	co, err := o.selfManaged.Options(cs, log.With("part", "certificates"), publish...)
	if err != nil {
		return err
	}
	src, err := certs.New(cfg, co)
	if err != nil {
		return err
	}
	*tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: src.GetCertificate}
	return errors.Join(mgr.Add(src), mgr.AddReadyzCheck("serving-certificate", func(r *http.Request) error { return src.Ready(r.Context()) }))
}

// validateTLS checks the serving certificate's source of an endpoint: files, self-managed, or
// self-signed in development mode.
func (o *endpointOptions) validateTLS(dev bool) error {
	if !o.selfManaged.Enabled() {
		o.tls.SelfSigned = dev
		return o.tls.Validate()
	}
	if o.tls.CertFile != "" {
		return errors.New("--self-managed-ca-secret and --tls-cert-file are alternatives; set one")
	}
	if o.selfManaged.CAConfigMap == "" {
		return errors.New("--self-managed-ca-secret needs --self-managed-ca-configmap: clients must learn the CA")
	}
	return o.selfManaged.Validate()
}

// tlsConfig returns the endpoint's TLS configuration. A self-managed certificate reaches
// kube-apiserver with kube; serve runs it.
func (o *endpointOptions) tlsConfig(ctx context.Context, log *slog.Logger, kube func() (*rest.Config, error), hosts ...string) (*tls.Config, error) {
	if !o.selfManaged.Enabled() {
		return o.tls.Config(ctx, log, hosts...)
	}
	cfg, err := kube()
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	co, err := o.selfManaged.Options(cs, log.With("part", "certificates"))
	if err != nil {
		return nil, err
	}
	if o.source, err = certs.New(cfg, co); err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}, GetCertificate: o.source.GetCertificate}, nil
}
