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

// PodList returns a PodList of about size bytes whose containers have commands and arguments
// written as arrays (a server's flags, a shell script, an exec probe; in one pod of eight, a
// database client given its password from the environment), environment variables and the
// status kube-apiserver reports.
func PodList(size int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"250000"},"items":[`)
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"metadata":{"name":"app-%05d-7d9f8b6c5d-x2k4q","generateName":"app-%05d-7d9f8b6c5d-","namespace":"default","uid":"%08x-6b1e-4c8e-9a41-2f5e8c7d9b10","resourceVersion":"%d","creationTimestamp":"2026-03-14T09:26:53Z","labels":{"app.kubernetes.io/name":"app-%05d","pod-template-hash":"7d9f8b6c5d"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"app-%05d-7d9f8b6c5d","uid":"5f0c2a1e-6b1e-4c8e-9a41-2f5e8c7d9b10","controller":true,"blockOwnerDeletion":true}],"finalizers":["example.com/cleanup"]},"spec":{"containers":[{"name":"server","image":"registry.example.com/app:1.%d.0","command":["/bin/server"],"args":["--listen=:8443","--metrics-addr=:9090","--log-level=info","--db-host","db-%d.internal","--token-file","/var/run/secrets/tokens/app"],"env":[{"name":"MODE","value":"production"},{"name":"DB_PASSWORD","valueFrom":{"secretKeyRef":{"name":"db","key":"password"}}}],"resources":{"limits":{"cpu":"500m","memory":"256Mi"}},"livenessProbe":{"exec":{"command":["sh","-c","curl -fsS http://localhost:9090/healthz"]},"periodSeconds":10},"volumeMounts":[{"name":"tokens","mountPath":"/var/run/secrets/tokens","readOnly":true}],"imagePullPolicy":"IfNotPresent"},%s],"restartPolicy":"Always","serviceAccountName":"app","nodeName":"node-%d","tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}]},"status":{"phase":"Running","podIP":"10.244.%d.%d","startTime":"2026-03-14T09:26:53Z","containerStatuses":[{"name":"server","ready":true,"restartCount":0,"image":"registry.example.com/app:1.%d.0","containerID":"containerd://%064x","started":true}]}}`,
			i, i, i*7919, 100000+i, i, i, i%20, i%8, sidecar(i), i%16, i%250, i%200, i%20, i*104729)
	}
	b.WriteString("]}\n")
	return b.Bytes()
}

// sidecar returns the second container of the pod numbered i in PodList.
func sidecar(i int) string {
	if i%8 == 0 {
		return fmt.Sprintf(`{"name":"backup","image":"registry.example.com/backup:2.1","command":["mysqldump","-h","db-%d.internal","-uapp","-p$(DB_PASSWORD)","--single-transaction","app"]}`, i%8)
	}
	return `{"name":"agent","image":"registry.example.com/agent:0.9","command":["/bin/agent"],"args":["--config=/etc/agent/config.yaml","--log-level=warn","--buffer-size","64Mi"]}`
}
