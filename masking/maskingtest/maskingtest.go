// Package maskingtest holds the bodies the masking and proxy benchmarks mask: lists as
// kube-apiserver sends them, of a chosen size, the same in every package that measures them.
package maskingtest

import (
	"bytes"
	"encoding/base64"
	"fmt"
)

// SecretList returns a SecretList of about size bytes, as kube-apiserver would send it: every
// Secret carries base64 data that masking replaces.
func SecretList(size int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"kind":"SecretList","apiVersion":"v1","metadata":{"resourceVersion":"250000"},"items":[`)
	raw := make([]byte, 600)
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		for k := range raw {
			raw[k] = byte((k*131 + i*7919 + k*k) % 251)
		}
		val := base64.StdEncoding.EncodeToString(raw)
		fmt.Fprintf(&b, `{"metadata":{"name":"app-%05d-credentials","namespace":"default","uid":"%08x-6b1e-4c8e-9a41-2f5e8c7d9b10","resourceVersion":"%d","creationTimestamp":"2026-03-14T09:26:53Z","labels":{"app.kubernetes.io/name":"app-%05d"}},"data":{"ca.crt":"%s","password":"%s","username":"YXBw"},"type":"Opaque"}`,
			i, i, 100000+i, i, val, val[:32])
	}
	b.WriteString("]}\n")
	return b.Bytes()
}

// ConfigMapList returns a ConfigMapList of about size bytes whose data hold configuration
// files, some with credentials in them.
func ConfigMapList(size int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"250000"},"items":[`)
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"metadata":{"name":"app-%05d-config","namespace":"default","uid":"%08x-6b1e-4c8e-9a41-2f5e8c7d9b10","resourceVersion":"%d","creationTimestamp":"2026-03-14T09:26:53Z","labels":{"app.kubernetes.io/name":"app-%05d"}},"data":{"application.yaml":"server:\n  port: 8080\n  threads: %d\nlogging:\n  level: info\nfeatures:\n  search: true\n  export: false\n","database.properties":"url=jdbc:postgresql://db-%d.internal:5432/app\nuser=app\npassword=pw-%08x-Qx7f\npool.size=20\n","mode":"production"}}`,
			i, i, 100000+i, i, i%64, i%8, i*7919)
	}
	b.WriteString("]}\n")
	return b.Bytes()
}
