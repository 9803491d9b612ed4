// Package serving holds what every Gatehouse HTTPS endpoint shares: TLS from certificate files
// that are reloaded when they change (or, in development, a self-signed certificate), an
// http.Server run for the life of a context with graceful shutdown (Run, and Server as a
// controller-runtime Runnable), the /healthz, /readyz and /metrics endpoints (Probes), and the
// one way they answer a failure: a Kubernetes Status (WriteStatus).
package serving
