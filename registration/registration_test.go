package registration_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gatehouse-dev/gatehouse/certs"
	"github.com/gatehouse-dev/gatehouse/registration"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

// TestSelfManagedWebhook runs the webhook's self-managed certificate and registration as the
// chart deploys them, with the chart's configurations and RBAC, against a real kube-apiserver:
// nothing is registered before the webhook is ready and answers; then kube-apiserver calls the
// webhook over the certificate it issued; a deleted configuration comes back; and a CA rotation
// drops no call.
func TestSelfManagedWebhook(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	testNS := bed.kube.Namespace(t, "registration")

	var (
		reg      *registration.Registrar
		bundleMu sync.Mutex
		bundles  [][]byte // published, in order
	)
	src, err := certs.New(bed.webhook, certs.Options{
		SecretNamespace: namespace,
		SecretName:      caSecret,
		DNSNames:        []string{"localhost"},
		RotationGrace:   3 * time.Second,
		Logger:          bed.log,
		Publish: func(ctx context.Context, b []byte) error {
			if err := reg.SetCABundle(ctx, b); err != nil {
				return err
			}
			bundleMu.Lock()
			bundles = append(bundles, b)
			bundleMu.Unlock()
			return nil
		},
	})
	require.NoError(t, err)
	srv := newWebhookServer(t, src.GetCertificate)

	data, err := testbed.ChartWebhookConfigurationsYAML()
	require.NoError(t, err)
	validating, mutating, err := registration.Parse([]byte(data))
	require.NoError(t, err)
	var (
		ready      atomic.Bool
		readyCalls atomic.Int64
	)
	opts := registration.Options{
		Validating: validating,
		Mutating:   mutating,
		URL:        srv.url,
		Ready: func(context.Context) error {
			readyCalls.Add(1)
			if !ready.Load() {
				return errors.New("policies not loaded")
			}
			return nil
		},
		Logger: bed.log,
	}
	fake := testingclock.NewFakeClock(time.Now())
	registration.SetClock(&opts, fake)
	reg, err = registration.New(bed.webhookCS, opts)
	require.NoError(t, err)

	var wg sync.WaitGroup
	for _, r := range []func(context.Context) error{src.Start, reg.Start} {
		wg.Go(func() {
			if err := r(ctx); err != nil {
				t.Errorf("runnable: %v", err)
			}
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait() })

	notRegistered := func() {
		t.Helper()
		vwc, err := bed.kube.Clientset.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, validatingCfg, metav1.GetOptions{})
		require.NoError(t, err, "the chart creates it empty")
		assert.Empty(t, vwc.Webhooks, "registered too early")
		assert.False(t, reg.Registered())
	}
	calledAgain := func(n int64) func(context.Context) error {
		return func(context.Context) error {
			if readyCalls.Load() < n {
				return errors.New("the registrar has not checked again")
			}
			return nil
		}
	}

	// Not ready (its policies are not loaded): nothing is registered.
	require.NoError(t, waitFor(ctx, 30*time.Second, calledAgain(2)))
	notRegistered()
	// Ready, but nothing answers at the webhook's address yet: still nothing.
	ready.Store(true)
	require.NoError(t, waitFor(ctx, 30*time.Second, calledAgain(readyCalls.Load()+2)))
	notRegistered()

	// Serving: registered with the CA that issued its certificate, at its address.
	srv.serve()
	require.NoError(t, waitFor(ctx, 60*time.Second, func(context.Context) error {
		if !reg.Registered() {
			return errors.New("not registered")
		}
		return nil
	}))
	vwc, err := bed.kube.Clientset.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, validatingCfg, metav1.GetOptions{})
	require.NoError(t, err)
	mwc, err := bed.kube.Clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, mutatingCfg, metav1.GetOptions{})
	require.NoError(t, err)
	require.Len(t, vwc.Webhooks, 5)
	require.Len(t, mwc.Webhooks, 2, "stamp and guard")
	for _, w := range vwc.Webhooks {
		assert.Nil(t, w.ClientConfig.Service, w.Name)
		require.NotNil(t, w.ClientConfig.URL, w.Name)
		assert.Equal(t, srv.url+"/validate", *w.ClientConfig.URL, w.Name)
		assert.Equal(t, src.Bundle(), w.ClientConfig.CABundle, w.Name)
	}
	for _, w := range mwc.Webhooks {
		assert.Nil(t, w.ClientConfig.Service, w.Name)
		require.NotNil(t, w.ClientConfig.URL, w.Name)
		assert.Equal(t, srv.url+"/mutate", *w.ClientConfig.URL, w.Name)
		assert.Equal(t, src.Bundle(), w.ClientConfig.CABundle, w.Name)
	}

	// kube-apiserver calls the webhook over the certificate it issued (its configuration
	// informer loads the registration within moments).
	require.NoError(t, waitFor(ctx, 30*time.Second, func(ctx context.Context) error {
		if err := privilegedCall(ctx, testNS); err != nil {
			return err
		}
		if srv.reviews.Load() == 0 {
			return errors.New("kube-apiserver has not called the webhook yet")
		}
		return nil
	}))

	// Edited by someone: put right at the next resync.
	edited := vwc.DeepCopy()
	edited.Webhooks = edited.Webhooks[:1]
	_, err = bed.kube.Clientset.AdmissionregistrationV1().ValidatingWebhookConfigurations().Update(ctx, edited, metav1.UpdateOptions{})
	require.NoError(t, err)
	resync := func() {
		t.Helper()
		require.NoError(t, waitFor(ctx, 30*time.Second, func(context.Context) error {
			if !fake.HasWaiters() {
				return errors.New("no resync ticker yet")
			}
			return nil
		}))
		fake.Step(registration.DefaultResync)
	}
	webhooks := func(n int) func(context.Context) error {
		return func(ctx context.Context) error {
			vwc, err := bed.kube.Clientset.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, validatingCfg, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if len(vwc.Webhooks) != n {
				return fmt.Errorf("%d webhooks, want %d", len(vwc.Webhooks), n)
			}
			return nil
		}
	}
	resync()
	require.NoError(t, waitFor(ctx, 30*time.Second, webhooks(5)))

	// Deleted by an administrator (break-glass): not created again by the webhook, though it
	// resyncs (it refills the emptied mutating configuration in the same pass); restored empty,
	// as the chart has it, it is filled at the next resync.
	require.NoError(t, bed.kube.Clientset.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, validatingCfg, metav1.DeleteOptions{}))
	mwc, err = bed.kube.Clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, mutatingCfg, metav1.GetOptions{})
	require.NoError(t, err)
	mwc.Webhooks = nil
	_, err = bed.kube.Clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(ctx, mwc, metav1.UpdateOptions{})
	require.NoError(t, err)
	resync()
	require.NoError(t, waitFor(ctx, 30*time.Second, func(ctx context.Context) error {
		mwc, err := bed.kube.Clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, mutatingCfg, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(mwc.Webhooks) != 2 {
			return errors.New("the resync has not run")
		}
		return nil
	}))
	_, err = bed.kube.Clientset.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, validatingCfg, metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "a deleted configuration stays deleted: %v", err)
	_, err = bed.kube.KubectlApply(filepath.Join(bed.root, "manifests", "webhook", "configurations.yaml"))
	require.NoError(t, err)
	resync()
	require.NoError(t, waitFor(ctx, 30*time.Second, webhooks(5)))

	t.Run("a CA rotation drops no call", func(t *testing.T) {
		before, err := parseBundle(src.Bundle())
		require.NoError(t, err)
		require.Len(t, before, 1)
		oldCA := before[0]

		// Privileged calls, one after the other, for the whole rotation: each one is refused
		// (failurePolicy Fail) if kube-apiserver cannot verify the webhook's certificate.
		var (
			ok       atomic.Int64
			failures []error
			failMu   sync.Mutex
		)
		callCtx, stopCalls := context.WithCancel(ctx)
		var calls sync.WaitGroup
		calls.Go(func() {
			for callCtx.Err() == nil {
				if err := privilegedCall(callCtx, testNS); err != nil {
					if callCtx.Err() == nil {
						failMu.Lock()
						failures = append(failures, err)
						failMu.Unlock()
					}
					continue
				}
				ok.Add(1)
			}
		})
		defer func() { stopCalls(); calls.Wait() }()
		require.NoError(t, waitFor(ctx, 30*time.Second, func(context.Context) error {
			if ok.Load() < 5 {
				return errors.New("calls are not going through yet")
			}
			return nil
		}))

		// Rotate: an administrator empties the CA Secret, the webhook generates a new CA.
		secret, err := bed.kube.Clientset.CoreV1().Secrets(namespace).Get(ctx, caSecret, metav1.GetOptions{})
		require.NoError(t, err)
		secret.Data = nil
		_, err = bed.kube.Clientset.CoreV1().Secrets(namespace).Update(ctx, secret, metav1.UpdateOptions{})
		require.NoError(t, err)

		// The bundle goes [new, old] and then [new].
		var newCA *x509.Certificate
		require.NoError(t, waitFor(ctx, 60*time.Second, func(context.Context) error {
			bundleMu.Lock()
			defer bundleMu.Unlock()
			var sawBoth bool
			for _, b := range bundles {
				cas, err := parseBundle(b)
				if err != nil {
					return err
				}
				switch {
				case len(cas) == 2 && cas[1].Equal(oldCA) && !cas[0].Equal(oldCA):
					sawBoth, newCA = true, cas[0]
				case len(cas) == 1 && sawBoth && cas[0].Equal(newCA):
					return nil
				}
			}
			return errors.New("the rotation has not finished")
		}))
		// Certificates from the new CA are served (each call is a new handshake), and calls keep
		// succeeding.
		var after int64
		require.NoError(t, waitFor(ctx, 60*time.Second, func(context.Context) error {
			for _, leaf := range srv.leaves() {
				if leaf.CheckSignatureFrom(newCA) == nil {
					if after == 0 {
						after = ok.Load()
					}
					if ok.Load() >= after+5 {
						return nil
					}
					return errors.New("too few calls since the new certificate was served")
				}
			}
			return errors.New("no handshake with a certificate of the new CA yet")
		}))
		stopCalls()
		calls.Wait()
		t.Logf("%d calls, each its own TLS handshake, during the rotation", ok.Load())
		failMu.Lock()
		if !assert.Empty(t, len(failures), "calls refused during the rotation (of %d)", ok.Load()+int64(len(failures))) {
			t.Logf("the first: %v", failures[0])
		}
		failMu.Unlock()
		assert.True(t, srv.leaves()[0].CheckSignatureFrom(oldCA) == nil, "the first certificate was the old CA's")

		vwc, err := bed.kube.Clientset.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, validatingCfg, metav1.GetOptions{})
		require.NoError(t, err)
		registered, err := parseBundle(vwc.Webhooks[0].ClientConfig.CABundle)
		require.NoError(t, err)
		require.Len(t, registered, 1, "the previous CA is no longer trusted")
		assert.True(t, registered[0].Equal(newCA))
	})
}
