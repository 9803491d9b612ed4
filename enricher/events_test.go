package enricher

import (
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

// genOptions shape the synthetic audit events of genEvent: the mix of a busy cluster, in the
// exact form kube-apiserver writes them (audit.k8s.io/v1, as the webhook backend sends them).
type genOptions struct {
	// id prefixes the audit IDs, so that batches of different tests never collide.
	id string
	// secret is the value of the Secret read by every tenth event. Default "hunter2-…".
	secret string
	// session, when set, makes the events impersonated by the gateway with this session.
	session string
	// start is the receive time of event 0; event i is i microseconds later.
	start time.Time
}

// genEvent returns event i: 60% metadata-level reads, 20% creates with request and response
// objects, 10% Secret reads with data, 10% exec calls.
func genEvent(i int, o genOptions) []byte {
	if o.secret == "" {
		o.secret = "hunter2-correct-horse-battery"
	}
	if o.start.IsZero() {
		o.start = time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	}
	recv := o.start.Add(time.Duration(i)*time.Microsecond + time.Duration(i*7919%997)*time.Nanosecond*1000)
	ts := func(t time.Time) string { return t.Format("2006-01-02T15:04:05.000000Z07:00") }
	// Variety, as in a real cluster: namespaces, users, sources, clients and UIDs differ.
	ns := fmt.Sprintf("team-%c%d", 'a'+i%7, i%23)
	uid := func(salt int) string {
		h := uint64(i)*0x9e3779b97f4a7c15 + uint64(salt)*0xbf58476d1ce4e5b9
		return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", uint32(h>>32), uint16(h>>16), uint16(h)&0xfff, uint16(h>>40)&0xfff, h&0xffffffffffff)
	}
	agents := []string{"kubectl/v1.36.3 (linux/amd64) kubernetes/abcdef", "coding-agent/2.1 (linux/amd64)", "argocd-application-controller/v3.1", "Go-http-client/2.0"}
	user := fmt.Sprintf(`"user":{"username":"user-%d@example.com","uid":"%s","groups":["dev","system:authenticated"]}`, i%37, uid(1))
	if o.session != "" {
		user = `"user":{"username":"system:serviceaccount:gatehouse:gatehouse-proxy","uid":"8d5f8c1a-4a9e-4b8e-9d3c-0c2f6d5d7a11",` +
			`"groups":["system:serviceaccounts","system:serviceaccounts:gatehouse","system:authenticated"],` +
			`"extra":{"authentication.kubernetes.io/credential-id":["JTI=5c9a7e4b-2f1d-4e7a-9b3c-1d2e3f4a5b6c"]}},` +
			`"impersonatedUser":{"username":"alice@example.com","groups":["dev","system:authenticated"],"extra":{` +
			`"gatehouse.dev/session-id":["` + o.session + `"],"gatehouse.dev/issuer":["https://idp.example.com"],` +
			`"gatehouse.dev/subject":["alice"],"gatehouse.dev/client":["kubectl/v1.36"]}}`
	}
	common := fmt.Sprintf(`"auditID":"%s-%08d","stage":"ResponseComplete",%s,"sourceIPs":["10.%d.%d.%d"],`+
		`"userAgent":%q,`, o.id, i, user, i%3, i%251, i%241, agents[i%len(agents)])
	times := fmt.Sprintf(`"requestReceivedTimestamp":"%s","stageTimestamp":"%s",`, ts(recv), ts(recv.Add(7*time.Millisecond)))
	ann := `"annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed by RoleBinding \"dev/team-a\" of Role \"dev\" to User \"alice@example.com\""}`
	var ev string
	switch i % 10 {
	case 6, 7:
		obj := fmt.Sprintf(`{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"app-config-%d","namespace":"%s","uid":"%s","resourceVersion":"%d","labels":{"app":"web-%d"}},"data":{"LOG_LEVEL":"info","FEATURE_FLAGS":"a,b,c","listen":":%d","build":"%s"}}`, i, ns, uid(2), 100000+i, i%13, 8000+i%100, uid(3))
		ev = `{"level":"RequestResponse",` + common +
			`"requestURI":"/api/v1/namespaces/` + ns + `/configmaps?fieldManager=kubectl-client-side-apply","verb":"create",` +
			fmt.Sprintf(`"objectRef":{"resource":"configmaps","namespace":"%s","name":"app-config-%d","apiVersion":"v1"},`, ns, i) +
			`"responseStatus":{"metadata":{},"code":201},"requestObject":` + obj + `,"responseObject":` + obj + `,` + times + ann + `}`
	case 8:
		data := base64.StdEncoding.EncodeToString([]byte(o.secret))
		ev = `{"level":"RequestResponse",` + common +
			`"requestURI":"/api/v1/namespaces/` + ns + `/secrets/db-credentials","verb":"get",` +
			`"objectRef":{"resource":"secrets","namespace":"` + ns + `","name":"db-credentials","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},` +
			`"responseObject":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db-credentials","namespace":"` + ns + `","uid":"` + uid(4) + `","resourceVersion":"` + fmt.Sprint(4711+i) + `"},` +
			`"data":{"password":"` + data + `","username":"YWRtaW4="},"type":"Opaque"},` + times + ann + `}`
	case 9:
		ev = `{"level":"Metadata",` + common +
			`"requestURI":"/api/v1/namespaces/` + ns + `/pods/web-` + fmt.Sprint(i%50) + `/exec?command=sh&command=-c&command=psql+--password+` + o.secret + `&container=main&stdin=true&stdout=true","verb":"create",` +
			`"objectRef":{"resource":"pods","namespace":"` + ns + `","name":"web-` + fmt.Sprint(i%50) + `","apiVersion":"v1","subresource":"exec"},"responseStatus":{"metadata":{},"code":101},` + times + ann + `}`
	default:
		ev = `{"level":"Metadata",` + common +
			`"requestURI":"/api/v1/namespaces/` + ns + `/pods?limit=500","verb":"list",` +
			`"objectRef":{"resource":"pods","namespace":"` + ns + `","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},` + times + ann + `}`
	}
	return []byte(ev)
}

// testEventList returns an audit.k8s.io/v1 EventList of events from..to-1.
func testEventList(from, to int, o genOptions) []byte {
	var b strings.Builder
	b.WriteString(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[`)
	for i := from; i < to; i++ {
		if i > from {
			b.WriteByte(',')
		}
		b.Write(genEvent(i, o))
	}
	b.WriteString("]}")
	return []byte(b.String())
}
