package authn

// Reason returns the failure reason of an error from AuthenticateToken or CheckIdentity, one of
// the Reason* constants, for metrics, logs and trail records. It never contains the token or its
// claims.
func Reason(err error) string { return reason(err) }
