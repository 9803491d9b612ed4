package masking

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gatehouse-dev/gatehouse/masking/maskingtest"
)

// The benchmarks compare masking with encoding/json's Valid over the same bytes: the /mask and
// /baseline=json.Valid sub-benchmarks of each report MB/s, and make bench prints the ratio of their
// ns/op, the cost of masking relative to merely validating (the target is at most 3). Timings are
// not asserted in tests: the machine they run on is shared.

// benchPair is a masking benchmark and json.Valid over the same bytes.
type benchPair struct {
	name        string
	mask, valid func(*testing.B)
}

func benchPairs() []benchPair {
	m, err := New(Config{Key: benchKey})
	if err != nil {
		panic(err)
	}
	list := genSecretList(2000)
	pairs := []benchPair{{
		name: "SecretList",
		mask: func(b *testing.B) {
			b.SetBytes(int64(len(list)))
			b.ReportAllocs()
			dst := make([]byte, 0, len(list)+len(list)/4)
			for b.Loop() {
				out, _, err := m.JSON(dst[:0], list, Target{Resource: "secrets"})
				if err != nil {
					b.Fatal(err)
				}
				dst = out
			}
		},
		valid: validBench(list, false),
	}}
	for _, n := range []int{1000, 10000} {
		stream := genWatchStream(n)
		pairs = append(pairs, benchPair{
			name: fmt.Sprintf("WatchStream/events=%d", n),
			mask: func(b *testing.B) {
				b.SetBytes(int64(len(stream)))
				b.ReportAllocs()
				buf := make([]byte, 32<<10)
				for b.Loop() {
					r := m.WatchStream(bytes.NewReader(stream), Target{})
					for {
						_, err := r.Read(buf)
						if err == io.EOF {
							break
						}
						if err != nil {
							b.Fatal(err)
						}
					}
				}
			},
			valid: validBench(stream, true),
		})
	}
	return pairs
}

// validBench runs json.Valid over src, line by line for streams.
func validBench(src []byte, lines bool) func(*testing.B) {
	return func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		b.ReportAllocs()
		for b.Loop() {
			if !lines {
				if !json.Valid(src) {
					b.Fatal("invalid")
				}
				continue
			}
			for rest := src; len(rest) > 0; {
				line, after, _ := bytes.Cut(rest, []byte("\n"))
				if !json.Valid(line) {
					b.Fatal("invalid")
				}
				rest = after
			}
		}
	}
}

var benchKey = Key("gatehouse-benchmark-key-0123456789")

// genSecret writes one Secret as the API server would in a SecretList (no kind), about 5 KB.
func genSecret(b *bytes.Buffer, i int, withKind bool) {
	val := func(n int, seed int) string {
		raw := make([]byte, n)
		for k := range raw {
			raw[k] = byte((k*131 + seed*7919 + k*k) % 251)
		}
		return base64.StdEncoding.EncodeToString(raw)
	}
	b.WriteString(`{`)
	if withKind {
		b.WriteString(`"kind":"Secret","apiVersion":"v1",`)
	}
	fmt.Fprintf(b, `"metadata":{"name":"app-%05d-credentials","namespace":"team-%02d","uid":"%08x-6b1e-4c8e-9a41-2f5e8c7d9b10","resourceVersion":"%d","creationTimestamp":"2026-03-14T09:26:53Z","labels":{"app.kubernetes.io/name":"app-%05d","app.kubernetes.io/part-of":"payments"},"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"apiVersion\":\"v1\",\"data\":{\"password\":\"%s\",\"username\":\"YXBw\"},\"kind\":\"Secret\",\"metadata\":{\"annotations\":{},\"name\":\"app-%05d-credentials\",\"namespace\":\"team-%02d\"},\"type\":\"Opaque\"}\n"},"managedFields":[{"manager":"kubectl-client-side-apply","operation":"Update","apiVersion":"v1","time":"2026-03-14T09:26:53Z","fieldsType":"FieldsV1","fieldsV1":{"f:data":{".":{},"f:ca.crt":{},"f:config.yaml":{},"f:password":{},"f:tls.crt":{},"f:tls.key":{},"f:username":{}},"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}},"f:labels":{".":{},"f:app.kubernetes.io/name":{},"f:app.kubernetes.io/part-of":{}}},"f:type":{}}}]},`,
		i, i%40, i, 100000+i, i, val(24, i), i, i%40)
	fmt.Fprintf(b, `"data":{"ca.crt":"%s","config.yaml":"%s","password":"%s","tls.crt":"%s","tls.key":"%s","username":"YXBw"},"type":"Opaque"}`,
		val(700, i+1), val(300, i+2), val(24, i), val(1100, i+3), val(900, i+4))
}

// genSecretList returns a SecretList of n Secrets.
func genSecretList(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"kind":"SecretList","apiVersion":"v1","metadata":{"resourceVersion":"250000"},"items":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		genSecret(&b, i, false)
	}
	b.WriteString("]}\n")
	return b.Bytes()
}

// genPod writes one Pod with credentials in its environment and arguments.
func genPod(b *bytes.Buffer, i int) {
	fmt.Fprintf(b, `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"api-%05d","namespace":"team-%02d","uid":"%08x-4a5b-4c6d-8e7f-9a0b1c2d3e4f","resourceVersion":"%d","creationTimestamp":"2026-03-14T09:26:53Z","labels":{"app":"api"},"managedFields":[{"manager":"kube-controller-manager","operation":"Update","apiVersion":"v1","time":"2026-03-14T09:26:53Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"api\"}":{".":{},"f:env":{},"f:image":{},"f:name":{}}}}}}]},"spec":{"containers":[{"name":"api","image":"registry.example.com/api:1.4.%d","args":["--listen=:8443","--log-level=info","--admin-password","pw-%08x"],"env":[{"name":"DB_PASSWORD","value":"pw-%08x-Qx7"},{"name":"API_KEY","value":"k%08xZ9f8e7d6c5b4a"},{"name":"LOG_LEVEL","value":"info"},{"name":"REGION","value":"eu-west-1"}],"resources":{}}],"restartPolicy":"Always","serviceAccountName":"api"},"status":{"phase":"Running","podIP":"10.0.%d.%d","startTime":"2026-03-14T09:26:53Z"}}`,
		i, i%40, i, 200000+i, i%10, i, i, i, i%250, i%200)
}

// genWatchStream returns a watch stream of n events, Secrets and Pods alternating.
func genWatchStream(n int) []byte {
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		if i%2 == 0 {
			b.WriteString(`{"type":"ADDED","object":`)
			genSecret(&b, i, true)
		} else {
			b.WriteString(`{"type":"MODIFIED","object":`)
			genPod(&b, i)
		}
		b.WriteString("}\n")
	}
	return b.Bytes()
}

func BenchmarkSecretList(b *testing.B) {
	p := benchPairs()[0]
	b.Run("baseline=json.Valid", p.valid)
	b.Run("mask", p.mask)
	// The list the proxy's benchmarks read (maskingtest.SecretList), masked as the proxy masks a
	// response read whole: BodyInto into a reused buffer, with a SecretValue hook.
	list := maskingtest.SecretList(1 << 20)
	b.Run("shape=proxy/baseline=json.Valid", validBench(list, false))
	b.Run("shape=proxy/mask", func(b *testing.B) {
		m, err := New(Config{Key: benchKey})
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(list)))
		b.ReportAllocs()
		buf := make([]byte, 0, len(list)+len(list)/8)
		values := 0
		t := Target{Version: "v1", Resource: "secrets", Namespace: "default", SecretValue: func(v, ph []byte) { values++ }}
		for b.Loop() {
			out, _, err := m.BodyInto(buf, "application/json", "", list, t)
			if err != nil || len(out) == 0 {
				b.Fatal(err)
			}
		}
		if values == 0 {
			b.Fatal("no Secret values reported")
		}
	})
}

// BenchmarkPodList masks a 1 MB PodList, whose containers' commands and arguments are arrays
// of strings read as command lines (argv.go).
func BenchmarkPodList(b *testing.B) {
	m, err := New(Config{Key: benchKey})
	if err != nil {
		b.Fatal(err)
	}
	pods := maskingtest.PodList(1 << 20)
	b.Run("baseline=json.Valid", validBench(pods, false))
	b.Run("mask", func(b *testing.B) {
		b.SetBytes(int64(len(pods)))
		b.ReportAllocs()
		dst := make([]byte, 0, len(pods)+len(pods)/4)
		for b.Loop() {
			out, _, err := m.JSON(dst[:0], pods, Target{Resource: "pods"})
			if err != nil {
				b.Fatal(err)
			}
			dst = out
		}
	})
}

func BenchmarkWatchStream(b *testing.B) {
	for _, p := range benchPairs()[1:] {
		n := strings.TrimPrefix(p.name, "WatchStream/")
		b.Run(n+"/baseline=json.Valid", p.valid)
		b.Run(n+"/mask", p.mask)
	}
}

func BenchmarkText(b *testing.B) {
	m, err := New(Config{Key: benchKey})
	if err != nil {
		b.Fatal(err)
	}
	var sb strings.Builder
	for i := 0; i < 20000; i++ {
		fmt.Fprintf(&sb, "2026-03-14T09:26:53.%06dZ level=info msg=\"request served\" method=GET path=/api/v1/orders/%d status=200 duration=%dms user=alice\n", i, i, i%97)
	}
	src := []byte(sb.String())
	b.Run("mask", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		b.ReportAllocs()
		dst := make([]byte, 0, len(src))
		for b.Loop() {
			dst, _ = m.Text(dst[:0], src)
		}
	})
}

// genLogLines returns n lines of container logs: plain (klog, access log, application text)
// or structured (one JSON object per line, some with JSON in a string field).
func genLogLines(n int, structured bool) []byte {
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		if structured {
			switch i % 4 {
			case 0, 1:
				fmt.Fprintf(&b, `{"time":"2026-03-14T09:26:53.%06dZ","level":"INFO","msg":"request served","method":"GET","path":"/api/v1/orders/%d","status":200,"duration_ms":%d,"trace_id":"%032x","user":"alice"}`+"\n", i, i, i%97, i*7919)
			case 2:
				fmt.Fprintf(&b, `{"time":"2026-03-14T09:26:53.%06dZ","level":"WARN","msg":"upstream slow","upstream":"payments.svc:8443","attempt":%d,"error":"context deadline exceeded (Client.Timeout exceeded while awaiting headers)"}`+"\n", i, i%5)
			default:
				fmt.Fprintf(&b, `{"time":"2026-03-14T09:26:53.%06dZ","level":"DEBUG","msg":"event","payload":"{\"type\":\"order.created\",\"id\":%d,\"items\":[{\"sku\":\"A-%d\",\"qty\":2}]}"}`+"\n", i, i, i%100)
			}
			continue
		}
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "I0314 09:26:53.%06d       1 controller.go:%d] \"Reconciled\" object=\"payments/web-%05d\" duration=\"%dms\"\n", i, i%400, i, i%97)
		case 1:
			fmt.Fprintf(&b, "10.244.%d.%d - - [14/Mar/2026:09:26:53 +0000] \"GET /api/v1/orders/%d HTTP/1.1\" 200 %d \"-\" \"kubectl/v1.36.3 (linux/amd64)\"\n", i%250, i%200, i, i%9999)
		case 2:
			fmt.Fprintf(&b, "2026-03-14T09:26:53.%06dZ level=info msg=\"request served\" method=GET path=/api/v1/orders/%d status=200 duration=%dms user=alice\n", i, i, i%97)
		default:
			fmt.Fprintf(&b, "2026-03-14 09:26:53,%03d WARN  [http-nio-8443-exec-%d] o.s.w.s.DispatcherServlet : Completed initialization in %d ms\n", i%1000, i%20, i%97)
		}
	}
	return b.Bytes()
}

// BenchmarkTextStream masks container logs as a pod log stream, line by line, against a
// baseline over the same lines: json.Valid for structured lines, utf8.Valid for plain ones.
func BenchmarkTextStream(b *testing.B) {
	m, err := New(Config{Key: benchKey})
	if err != nil {
		b.Fatal(err)
	}
	for _, structured := range []bool{false, true} {
		logs := genLogLines(20000, structured)
		name, baseline := "lines=plain", "baseline=utf8.Valid"
		if structured {
			name, baseline = "lines=json", "baseline=json.Valid"
		}
		b.Run(name+"/"+baseline, func(b *testing.B) {
			b.SetBytes(int64(len(logs)))
			b.ReportAllocs()
			for b.Loop() {
				for rest := logs; len(rest) > 0; {
					line, after, _ := bytes.Cut(rest, []byte("\n"))
					if structured && !json.Valid(line) || !structured && !utf8.Valid(line) {
						b.Fatal("invalid")
					}
					rest = after
				}
			}
		})
		b.Run(name+"/mask", func(b *testing.B) {
			b.SetBytes(int64(len(logs)))
			b.ReportAllocs()
			buf := make([]byte, 32<<10)
			for b.Loop() {
				r := m.TextStream(bytes.NewReader(logs))
				for {
					_, err := r.Read(buf)
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkMaskPerMB masks SecretLists of 1, 10 and 100 MB against json.Valid over the same
// bytes, and reports the cost per MB: the same ns/MB at every size is linear cost (make bench
// shows it relative to the 1 MB point).
func BenchmarkMaskPerMB(b *testing.B) {
	m, err := New(Config{Key: benchKey})
	if err != nil {
		b.Fatal(err)
	}
	const secretBytes = 5200 // about one genSecret
	for _, mb := range []int{1, 10, 100} {
		list := genSecretList(mb << 20 / secretBytes)
		perMB := func(b *testing.B, start time.Time) {
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N)/(float64(len(list))/(1<<20)), "ns/MB")
		}
		b.Run(fmt.Sprintf("size=%dMB/baseline=json.Valid", mb), func(b *testing.B) {
			b.SetBytes(int64(len(list)))
			start := time.Now()
			for b.Loop() {
				if !json.Valid(list) {
					b.Fatal("invalid")
				}
			}
			perMB(b, start)
		})
		b.Run(fmt.Sprintf("size=%dMB/mask", mb), func(b *testing.B) {
			b.SetBytes(int64(len(list)))
			b.ReportAllocs()
			dst := make([]byte, 0, len(list))
			start := time.Now()
			for b.Loop() {
				out, _, err := m.JSON(dst[:0], list, Target{Resource: "secrets"})
				if err != nil {
					b.Fatal(err)
				}
				dst = out
			}
			perMB(b, start)
		})
	}
}
