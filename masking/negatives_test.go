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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/gatehouse-dev/gatehouse/masking/internal/fakecreds"
)

// The negative corpus: generated objects of the kinds a cluster is full of, with the values
// that look random but are no secrets (image digests, UIDs, hashes, checksums, certificates and
// other base64, resource versions, timestamps, addresses, URLs without credentials), their
// last-applied annotations, and the log lines applications write. Outside Secrets nothing of
// it may change.

// objGen generates realistic objects.
type objGen struct {
	*fakecreds.Gen
	n int
}

func (g *objGen) name(prefix string) string { return prefix + "-" + g.S(fakecreds.SetLower, 5) }

func (g *objGen) meta(kind, ns, name string, withApplied bool) metav1.ObjectMeta {
	g.n++
	m := metav1.ObjectMeta{
		Name: name, Namespace: ns, UID: types.UID(g.UUID()), ResourceVersion: fmt.Sprint(100000 + g.IntN(900000)),
		Generation:        int64(1 + g.IntN(9)),
		CreationTimestamp: metav1.NewTime(time.Date(2026, 3, 14, 9, g.IntN(60), g.IntN(60), 0, time.UTC)),
		Labels: map[string]string{
			"app.kubernetes.io/name":       name,
			"app.kubernetes.io/instance":   name + "-prod",
			"app.kubernetes.io/version":    g.HexBytes(20),
			"app.kubernetes.io/managed-by": "Helm",
			"helm.sh/chart":                name + "-1." + fmt.Sprint(g.IntN(20)) + ".0",
			"pod-template-hash":            g.S(fakecreds.SetLower[26:]+"bcdf", 10),
		},
		Annotations: map[string]string{
			"meta.helm.sh/release-name":         name,
			"meta.helm.sh/release-namespace":    ns,
			"checksum/config":                   g.HexBytes(32),
			"checksum/secret":                   g.HexBytes(32),
			"kubectl.kubernetes.io/restartedAt": "2026-03-14T09:26:53Z",
			"deployment.kubernetes.io/revision": fmt.Sprint(1 + g.IntN(30)),
			"prometheus.io/scrape":              "true",
			"prometheus.io/port":                "9090",
			"eks.amazonaws.com/role-arn":        "arn:aws:iam::" + g.S(fakecreds.SetDigits, 12) + ":role/" + name,
			"iam.gke.io/gcp-service-account":    name + "@proj-" + g.S(fakecreds.SetLower, 6) + ".iam.gserviceaccount.com",
			"azure.workload.identity/client-id": g.UUID(),
			"sidecar.istio.io/status":           `{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":["workload-socket","istio-envoy","istio-data","istio-podinfo","istio-token","istiod-ca-cert"],"imagePullSecrets":null,"revision":"default"}`,
			"example.com/build":                 `{"commit":"` + g.HexBytes(20) + `","pipeline":` + fmt.Sprint(g.IntN(99999)) + `,"url":"https://ci.example.com/builds/` + g.UUID() + `"}`,
		},
		ManagedFields: []metav1.ManagedFieldsEntry{{
			Manager: "helm", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", FieldsType: "FieldsV1",
			Time:     &metav1.Time{Time: time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)},
			FieldsV1: metav1.NewFieldsV1(`{"f:metadata":{"f:labels":{".":{},"f:app.kubernetes.io/name":{}}},"f:spec":{"f:replicas":{}}}`),
		}},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: name + "-" + g.S(fakecreds.SetLower, 10), UID: types.UID(g.UUID())}},
	}
	if withApplied {
		m.Annotations["kubectl.kubernetes.io/last-applied-configuration"] = "" // set by the caller
	}
	return m
}

func (g *objGen) container(name string) corev1.Container {
	return corev1.Container{
		Name:    name,
		Image:   "registry.example.com/team/" + name + "@sha256:" + g.HexBytes(32),
		Command: []string{"/app/" + name},
		Args:    []string{"--listen=:8443", "--log-level=info", "--metrics-addr=0.0.0.0:9090", "--config=/etc/" + name + "/config.yaml", "--leader-elect", "--cache-ttl=15m"},
		Env: []corev1.EnvVar{
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name + "-db"}, Key: "password"}}},
			{Name: "DATABASE_URL", Value: "postgres://" + name + "@db.internal:5432/" + name + "?sslmode=require"},
			{Name: "OTEL_EXPORTER_OTLP_ENDPOINT", Value: "http://otel-collector.observability.svc:4317"},
			{Name: "OTEL_RESOURCE_ATTRIBUTES", Value: "service.name=" + name + ",service.version=" + g.HexBytes(4)},
			{Name: "GIT_COMMIT", Value: g.HexBytes(20)},
			{Name: "BUILD_ID", Value: g.UUID()},
			{Name: "FEATURE_FLAGS", Value: `{"checkout":true,"refunds":false,"rollout":25}`},
			{Name: "JAVA_OPTS", Value: "-Xms512m -Xmx1g -XX:+UseG1GC -Dfile.encoding=UTF-8"},
			{Name: "GOMEMLIMIT", Value: "900MiB"},
			{Name: "TZ", Value: "Europe/Paris"},
			{Name: "CACHE_KEY_PREFIX", Value: "v2:" + name + ":"},
			{Name: "TOKEN_TTL", Value: "3600"},
			{Name: "AWS_REGION", Value: "eu-west-1"},
			{Name: "AWS_ROLE_ARN", Value: "arn:aws:iam::" + g.S(fakecreds.SetDigits, 12) + ":role/" + name},
			{Name: "AWS_WEB_IDENTITY_TOKEN_FILE", Value: "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"},
			{Name: "SSH_KNOWN_HOSTS", Value: "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"},
		},
		Ports:          []corev1.ContainerPort{{Name: "https", ContainerPort: 8443}, {Name: "metrics", ContainerPort: 9090}},
		Resources:      corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("512Mi")}},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8443), Scheme: "HTTPS"}}},
		VolumeMounts:   []corev1.VolumeMount{{Name: "config", MountPath: "/etc/" + name}, {Name: "kube-api-access-" + g.S(fakecreds.SetLower, 5), MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}},
	}
}

func (g *objGen) podSpec(name string) corev1.PodSpec {
	return corev1.PodSpec{
		Containers:         []corev1.Container{g.container(name)},
		ServiceAccountName: name,
		ImagePullSecrets:   []corev1.LocalObjectReference{{Name: "registry-credentials"}},
		NodeSelector:       map[string]string{"kubernetes.io/os": "linux", "node.kubernetes.io/instance-type": "m6i.large"},
		Tolerations:        []corev1.Toleration{{Key: "node.kubernetes.io/not-ready", Operator: "Exists", Effect: "NoExecute"}},
		Volumes: []corev1.Volume{
			{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: name + "-config"}}}},
			{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: name + "-tls"}}},
		},
	}
}

func (g *objGen) pod(ns string) *corev1.Pod {
	name := g.name("api")
	p := &corev1.Pod{TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"}, ObjectMeta: g.meta("Pod", ns, name, false), Spec: g.podSpec("api")}
	p.Spec.NodeName = "ip-10-0-" + fmt.Sprint(g.IntN(255)) + "-" + fmt.Sprint(g.IntN(255)) + ".eu-west-1.compute.internal"
	p.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, HostIP: "10.0.12.7", PodIP: fmt.Sprintf("10.244.%d.%d", g.IntN(255), g.IntN(255)),
		PodIPs:    []corev1.PodIP{{IP: "10.244.3.17"}, {IP: "fd00:10:244:3::11"}},
		StartTime: &metav1.Time{Time: time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue,
			LastTransitionTime: metav1.NewTime(time.Date(2026, 3, 14, 9, 27, 0, 0, time.UTC))}},
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: "api", Ready: true, RestartCount: 2, Image: "registry.example.com/team/api:1.4.2",
			ImageID:     "registry.example.com/team/api@sha256:" + g.HexBytes(32),
			ContainerID: "containerd://" + g.HexBytes(32),
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 137, Reason: "OOMKilled", ContainerID: "containerd://" + g.HexBytes(32)}},
		}},
	}
	return p
}

func (g *objGen) deployment(ns string) *appsv1.Deployment {
	name := g.name("web")
	r := int32(3)
	d := &appsv1.Deployment{TypeMeta: metav1.TypeMeta{Kind: "Deployment", APIVersion: "apps/v1"}, ObjectMeta: g.meta("Deployment", ns, name, true),
		Spec: appsv1.DeploymentSpec{Replicas: &r, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": name}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app.kubernetes.io/name": name},
				Annotations: map[string]string{"checksum/config": g.HexBytes(32), "kubectl.kubernetes.io/restartedAt": "2026-03-14T09:26:53+01:00"}}, Spec: g.podSpec(name)}},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 4, Replicas: 3, ReadyReplicas: 3, Conditions: []appsv1.DeploymentCondition{{
			Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable",
			Message: `ReplicaSet "` + name + `-7c9f8d6b5d" has successfully progressed.`}}},
	}
	applied := *d
	applied.Status = appsv1.DeploymentStatus{}
	applied.ObjectMeta = metav1.ObjectMeta{Name: d.Name, Namespace: d.Namespace, Labels: d.Labels}
	b, _ := json.Marshal(applied)
	d.Annotations["kubectl.kubernetes.io/last-applied-configuration"] = string(b) + "\n"
	return d
}

func (g *objGen) configMaps(ns string) []runtime.Object {
	cert := "-----BEGIN CERTIFICATE-----\n" + strings.TrimSpace(wrap64(g.B64(700))) + "\n-----END CERTIFICATE-----\n"
	cm := func(name string, data map[string]string) *corev1.ConfigMap {
		return &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{Kind: "ConfigMap", APIVersion: "v1"}, ObjectMeta: g.meta("ConfigMap", ns, name, false), Data: data}
	}
	grafana, _ := json.Marshal(map[string]any{"dashboard": map[string]any{"uid": g.S(fakecreds.SetAlnum, 9), "title": "API", "panels": []any{
		map[string]any{"type": "timeseries", "datasource": map[string]any{"type": "prometheus", "uid": g.S(fakecreds.SetAlnum, 9)},
			"targets": []any{map[string]any{"expr": `sum(rate(http_requests_total{job="api",code=~"5.."}[5m]))`, "refId": "A"}}}}},
		"data": map[string]any{"refresh": "30s"}})
	return []runtime.Object{
		cm("kube-root-ca.crt", map[string]string{"ca.crt": cert}),
		cm("coredns", map[string]string{"Corefile": ".:53 {\n    errors\n    health {\n       lameduck 5s\n    }\n    ready\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n       pods insecure\n       fallthrough in-addr.arpa ip6.arpa\n       ttl 30\n    }\n    prometheus :9153\n    forward . /etc/resolv.conf {\n       max_concurrent 1000\n    }\n    cache 30\n    loop\n    reload\n    loadbalance\n}\n"}),
		cm("kube-proxy", map[string]string{
			"config.conf":     "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nclientConnection:\n  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf\nclusterCIDR: 10.244.0.0/16\nmode: iptables\n",
			"kubeconfig.conf": "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt\n    server: https://10.0.0.1:6443\n  name: default\ncontexts:\n- context:\n    cluster: default\n    namespace: default\n    user: default\n  name: default\ncurrent-context: default\nusers:\n- name: default\n  user:\n    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token\n",
		}),
		cm("cluster-info", map[string]string{
			"kubeconfig":            "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: " + base64.StdEncoding.EncodeToString([]byte(cert)) + "\n    server: https://203.0.113.10:6443\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\nusers: null\n",
			"jws-kubeconfig-abcdef": "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9.." + g.S(fakecreds.SetB64URL, 43),
		}),
		cm("api-config", map[string]string{
			"application.yaml": "server:\n  port: 8443\nspring:\n  datasource:\n    url: jdbc:postgresql://db.internal:5432/app\n    username: app\n    password: ${DB_PASSWORD}\n  jpa:\n    open-in-view: false\nmanagement:\n  endpoints:\n    web:\n      exposure:\n        include: health,prometheus\n",
			"nginx.conf":       "worker_processes auto;\nevents { worker_connections 1024; }\nhttp {\n  upstream backend { server api:8443; keepalive 32; }\n  server {\n    listen 80;\n    location / { proxy_pass http://backend; proxy_set_header X-Request-Id $request_id; }\n  }\n}\n",
			"prometheus.yml":   "global:\n  scrape_interval: 30s\nscrape_configs:\n- job_name: kubernetes-pods\n  kubernetes_sd_configs:\n  - role: pod\n  bearer_token_file: /var/run/secrets/kubernetes.io/serviceaccount/token\n  tls_config:\n    ca_file: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt\n",
			"flags.json":       `{"checkout":{"enabled":true,"rollout":25,"segments":["beta","staff"]},"search":{"enabled":false},"release":"` + g.HexBytes(20) + `"}`,
			"dashboard.json":   string(grafana),
			"jwks.json":        `{"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"` + g.S(fakecreds.SetAlnum, 20) + `","n":"` + g.S(fakecreds.SetB64URL, 342) + `","e":"AQAB"}]}`,
			"known_hosts":      "github.com ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQCj7ndNxQowgcQnjshcLrqPEiiphnt+VTTvDP6mHBL9j1aNUkY4Ue1gvwnGLVlOhGeYrnZaMgRK6+PKCUXaDbC7qtbW8gIkhL7aGCsOr/C56SJMy/BCZfxd1nWzAOxSDPgVsmerOBYfNqltV9/hWCqBywINIR+5dIg6JTJ72pcEpEjcYgXkE2YEFXV1JHnsKgbLWNlhScqb2UmyRkQyytRLtL+38TGxkxCflmO+5Z8CSSNY7GidjMIZ7Q4zMjA2n1nGrlTDkzwDCsw+wqFPGQA179cnfGWOWRVruj16z6XyvxvjJwbz0wQZ75XK5tKSb7FNyeIEs4TT4jk+S4dhPeAUC5y+bDYirYgM4GC7uEnztnZyaVWQ7B381AK4Qdrwt51ZqExKbQpTUNn+EjqoTwvqNj4kqx5QUCI0ThS/YkOxJCXmPUWZbhjpCg56i+2aB6CmK2JGhn57K5mj0MNdBXA4/WnwH6XoPWJzK5Nyu2zB3nAZp+S5hpQs+p1vN1/wsjk=\n",
			"build-info":       base64.StdEncoding.EncodeToString([]byte(`{"commit":"` + g.HexBytes(20) + `","branch":"main","built":"2026-03-14T09:26:53Z"}`)),
			"release-notes":    "Fixed the retry of failed uploads (#4211). Tokens are now refreshed 5 minutes before they expire; the token endpoint is configurable. See https://docs.example.com/releases/1.4.",
		}),
	}
}

func wrap64(s string) string {
	var b strings.Builder
	for len(s) > 64 {
		b.WriteString(s[:64] + "\n")
		s = s[64:]
	}
	return b.String() + s
}

func (g *objGen) others(ns string) []runtime.Object {
	name := g.name("web")
	failurePolicy := admissionregistrationv1.Fail
	sideEffects := admissionregistrationv1.SideEffectClassNone
	holder := "ip-10-0-12-7_" + g.UUID()
	return []runtime.Object{
		&corev1.Service{TypeMeta: metav1.TypeMeta{Kind: "Service", APIVersion: "v1"}, ObjectMeta: g.meta("Service", ns, name, false),
			Spec: corev1.ServiceSpec{ClusterIP: "10.96.14.201", ClusterIPs: []string{"10.96.14.201"}, Ports: []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromString("https")}},
				Selector: map[string]string{"app.kubernetes.io/name": name}}},
		&corev1.Event{TypeMeta: metav1.TypeMeta{Kind: "Event", APIVersion: "v1"}, ObjectMeta: metav1.ObjectMeta{Name: name + ".17c9d2a6b4e1f3c8", Namespace: ns},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: name, Namespace: ns, UID: types.UID(g.UUID()), FieldPath: "spec.containers{api}"},
			Reason:         "Pulled", Message: `Successfully pulled image "registry.example.com/team/api@sha256:` + g.HexBytes(32) + `" in 1.21s (1.21s including waiting). Image size: 72093478 bytes.`,
			Source: corev1.EventSource{Component: "kubelet", Host: "ip-10-0-12-7"}, Count: 1, Type: "Normal"},
		&corev1.Event{TypeMeta: metav1.TypeMeta{Kind: "Event", APIVersion: "v1"}, ObjectMeta: metav1.ObjectMeta{Name: name + ".17c9d2a6b4e1f3c9", Namespace: ns},
			Reason: "FailedMount", Message: `MountVolume.SetUp failed for volume "kube-api-access-` + g.S(fakecreds.SetLower, 5) + `" : object "` + ns + `"/"kube-root-ca.crt" not registered`, Type: "Warning"},
		&corev1.Event{TypeMeta: metav1.TypeMeta{Kind: "Event", APIVersion: "v1"}, ObjectMeta: metav1.ObjectMeta{Name: name + ".17c9d2a6b4e1f3d0", Namespace: ns},
			Reason: "BackOff", Message: `Back-off pulling image "registry.example.com/team/api:` + g.HexBytes(4) + `": ErrImagePull: rpc error: code = NotFound desc = failed to pull and unpack image: failed to resolve reference: not found`, Type: "Warning"},
		&corev1.Node{TypeMeta: metav1.TypeMeta{Kind: "Node", APIVersion: "v1"}, ObjectMeta: g.meta("Node", "", "ip-10-0-12-7.eu-west-1.compute.internal", false),
			Spec: corev1.NodeSpec{PodCIDR: "10.244.3.0/24", ProviderID: "aws:///eu-west-1a/i-0" + g.HexBytes(8)[:16]},
			Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: "InternalIP", Address: "10.0.12.7"}, {Type: "Hostname", Address: "ip-10-0-12-7.eu-west-1.compute.internal"}},
				NodeInfo: corev1.NodeSystemInfo{MachineID: g.HexBytes(16), SystemUUID: strings.ToUpper(g.UUID()), BootID: g.UUID(), KernelVersion: "6.1.119-129.201.amzn2023.x86_64",
					OSImage: "Amazon Linux 2023.6.20250115", ContainerRuntimeVersion: "containerd://1.7.25", KubeletVersion: "v1.36.3", Architecture: "amd64", OperatingSystem: "linux"},
				Images: []corev1.ContainerImage{{Names: []string{"registry.example.com/team/api@sha256:" + g.HexBytes(32), "registry.example.com/team/api:1.4.2"}, SizeBytes: 72093478}}}},
		&batchv1.CronJob{TypeMeta: metav1.TypeMeta{Kind: "CronJob", APIVersion: "batch/v1"}, ObjectMeta: g.meta("CronJob", ns, g.name("backup"), false),
			Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: g.podSpec("backup")}}}}},
		&networkingv1.Ingress{TypeMeta: metav1.TypeMeta{Kind: "Ingress", APIVersion: "networking.k8s.io/v1"}, ObjectMeta: g.meta("Ingress", ns, name, false),
			Spec: networkingv1.IngressSpec{TLS: []networkingv1.IngressTLS{{Hosts: []string{"api.example.com"}, SecretName: name + "-tls"}}}},
		&coordinationv1.Lease{TypeMeta: metav1.TypeMeta{Kind: "Lease", APIVersion: "coordination.k8s.io/v1"}, ObjectMeta: g.meta("Lease", ns, name+"-leader", false),
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder}},
		&admissionregistrationv1.ValidatingWebhookConfiguration{TypeMeta: metav1.TypeMeta{Kind: "ValidatingWebhookConfiguration", APIVersion: "admissionregistration.k8s.io/v1"},
			ObjectMeta: g.meta("ValidatingWebhookConfiguration", "", name, false),
			Webhooks: []admissionregistrationv1.ValidatingWebhook{{Name: "validate." + name + ".example.com", FailurePolicy: &failurePolicy, SideEffects: &sideEffects, AdmissionReviewVersions: []string{"v1"},
				ClientConfig: admissionregistrationv1.WebhookClientConfig{CABundle: []byte("-----BEGIN CERTIFICATE-----\n" + wrap64(g.B64(500)) + "\n-----END CERTIFICATE-----\n"),
					Service: &admissionregistrationv1.ServiceReference{Namespace: ns, Name: name}}}}},
	}
}

// negativeObjects returns the negative corpus as JSON objects and the targets to mask them with.
func negativeObjects(seed uint64, n int) []struct {
	doc    []byte
	target Target
} {
	g := &objGen{Gen: fakecreds.NewGen(seed)}
	var out []struct {
		doc    []byte
		target Target
	}
	add := func(o runtime.Object, resource, group string) {
		b, err := json.Marshal(o)
		if err != nil {
			panic(err)
		}
		out = append(out, struct {
			doc    []byte
			target Target
		}{b, Target{Group: group, Version: "v1", Resource: resource, Namespace: "payments"}})
	}
	for i := range n {
		ns := []string{"payments", "default", "kube-system", "monitoring"}[i%4]
		add(g.pod(ns), "pods", "")
		add(g.deployment(ns), "deployments", "apps")
		for _, cm := range g.configMaps(ns) {
			add(cm, "configmaps", "")
		}
		for _, o := range g.others(ns) {
			add(o, "", "") // no hint: the objects name their kinds
		}
	}
	return out
}

// harmlessLogLines are log lines as applications write them.
func harmlessLogLines(g *fakecreds.Gen) string {
	var b strings.Builder
	for i := range 40 {
		fmt.Fprintf(&b, "10.244.%d.%d - - [14/Mar/2026:09:26:%02d +0000] \"GET /api/v1/orders/%d?expand=items HTTP/1.1\" 200 %d \"-\" \"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\" %s\n",
			g.IntN(255), g.IntN(255), i%60, g.IntN(99999), g.IntN(9999), g.HexBytes(16))
		fmt.Fprintf(&b, `{"time":"2026-03-14T09:26:%02d.123Z","level":"INFO","msg":"request served","trace_id":"%s","span_id":"%s","request_id":"%s","method":"POST","path":"/api/v1/checkout","status":201,"duration_ms":%d,"user_agent":"kubectl/v1.36.3 (linux/amd64) kubernetes/%s"}`+"\n",
			i%60, g.HexBytes(16), g.HexBytes(8), g.UUID(), g.IntN(999), g.HexBytes(4)[:7])
		fmt.Fprintf(&b, "I0314 09:26:%02d.%06d       1 controller.go:%d] \"Reconciled\" object=\"payments/web-%s\" revision=\"%s\" duration=\"%dms\"\n",
			i%60, g.IntN(999999), g.IntN(999), g.S(fakecreds.SetLower, 5), g.HexBytes(20), g.IntN(999))
		fmt.Fprintf(&b, "2026-03-14 09:26:%02d,123 WARN  [http-nio-8443-exec-%d] o.s.w.s.m.s.DefaultHandlerExceptionResolver : Resolved [org.springframework.web.HttpMediaTypeNotSupportedException: Content-Type 'text/plain;charset=UTF-8' is not supported]\n",
			i%60, g.IntN(20))
	}
	b.WriteString("panic: runtime error: invalid memory address or nil pointer dereference\n[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a2b3c]\n\ngoroutine 1 [running]:\nmain.(*server).handle(0xc000123456, {0x7f3a2c1b8e40, 0xc0001a2b30})\n\t/app/server.go:42 +0x1d\n")
	b.WriteString("Traceback (most recent call last):\n  File \"/app/worker.py\", line 88, in run\n    result = client.fetch(url, timeout=30)\nrequests.exceptions.ConnectTimeout: HTTPSConnectionPool(host='api.example.com', port=443): Max retries exceeded\n")
	b.WriteString("{\n  \"level\": \"info\",\n  \"msg\": \"config loaded\",\n  \"config\": {\n    \"replicas\": 3,\n    \"image\": \"nginx:1.27\",\n    \"checksum\": \"" + g.HexBytes(32) + "\"\n  }\n}\n")
	b.WriteString("func main() {\n\tfmt.Println(\"hello\")\n}\n")
	b.WriteString("payload: " + base64.StdEncoding.EncodeToString([]byte(`{"event":"order.created","id":"`+g.UUID()+`","amount":1250}`)) + "\n")
	b.WriteString("keys: {\"a\": 1} {broken json {\"b\": [1, 2}\n")
	return b.String()
}

// TestNoFalsePositivesInObjects masks the negative corpus as the proxy would, alone, as a
// list, as watch events and inside audit events: nothing may change.
func TestNoFalsePositivesInObjects(t *testing.T) {
	m := newMasker(t, Config{})
	objs := negativeObjects(42, 8)
	var list bytes.Buffer
	list.WriteString(`{"kind":"List","apiVersion":"v1","metadata":{},"items":[`)
	var watch bytes.Buffer
	for i, o := range objs {
		out, st, err := m.Body("application/json", "", o.doc, o.target)
		require.NoError(t, err)
		if !bytes.Equal(o.doc, out) || st.Fields != 0 {
			t.Errorf("object %d changed: %s (%v)", i, firstDiff(o.doc, out), st.Detectors)
			continue
		}
		if i > 0 {
			list.WriteByte(',')
		}
		list.Write(o.doc)
		fmt.Fprintf(&watch, `{"type":"MODIFIED","object":%s}`+"\n", o.doc)

		audit := fmt.Sprintf(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"%s","stage":"ResponseComplete","verb":"update","objectRef":{"resource":"%s","namespace":"payments","apiVersion":"v1"},"requestObject":%s,"responseObject":%s}`, fakecreds.NewGen(uint64(i)).UUID(), o.target.Resource, o.doc, o.doc)
		out, st, err = m.JSON(nil, []byte(audit), Target{})
		require.NoError(t, err)
		if !bytes.Equal([]byte(audit), out) || st.Fields != 0 {
			t.Errorf("audit event of object %d changed: %s (%v)", i, firstDiff([]byte(audit), out), st.Detectors)
		}
	}
	list.WriteString("]}")
	out, st, err := m.Body("application/json", "", list.Bytes(), Target{})
	require.NoError(t, err)
	assert.Equal(t, list.String(), string(out))
	assert.Zero(t, st.Fields, "%v", st.Detectors)

	out, st, err = m.Body("application/json;stream=watch", "", watch.Bytes(), Target{})
	require.NoError(t, err)
	assert.Equal(t, watch.String(), string(out))
	assert.Zero(t, st.Fields, "%v", st.Detectors)
}

func TestNoFalsePositivesInLogs(t *testing.T) {
	m := newMasker(t, Config{})
	logs := harmlessLogLines(fakecreds.NewGen(42))
	out, st := m.Text(nil, []byte(logs))
	assert.Equal(t, "", firstDiff([]byte(logs), out))
	assert.Zero(t, st.Fields, "%v", st.Detectors)
	s := m.TextStream(strings.NewReader(logs))
	sout, err := readAll(s)
	require.NoError(t, err)
	assert.Equal(t, "", firstDiff([]byte(logs), sout))
	assert.Zero(t, s.Stats().Fields, "%v", s.Stats().Detectors)
}

// firstDiff describes where a and b first differ, with some context; "" when they are equal.
func firstDiff(a, b []byte) string {
	if bytes.Equal(a, b) {
		return ""
	}
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	from := max(0, i-80)
	return fmt.Sprintf("at %d: %q became %q", i, a[from:min(len(a), i+60)], b[from:min(len(b), i+60)])
}

func readAll(r *Reader) ([]byte, error) { return io.ReadAll(r) }
