{{/*
Names. fullname is the release name when it contains the chart name ("gatehouse"), else
<release>-gatehouse; every object is named <fullname>-<component>.
*/}}
{{- define "gatehouse.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "gatehouse.name" -}}
{{- printf "%s-%s" (include "gatehouse.fullname" .root) .component -}}
{{- end -}}

{{/* The labels of every object; .component names the component. */}}
{{- define "gatehouse.labels" -}}
app.kubernetes.io/name: gatehouse
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: gatehouse
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "gatehouse.selectorLabels" -}}
app.kubernetes.io/name: gatehouse
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "gatehouse.image" -}}
{{- $v := .Values.image -}}
{{- if $v.digest -}}
{{- printf "%s@%s" $v.repository $v.digest -}}
{{- else -}}
{{- printf "%s:%s" $v.repository (default .Chart.AppVersion $v.tag) -}}
{{- end -}}
{{- end -}}

{{/* The service DNS names of a component: <name>.<ns>.svc and <name>.<ns>.svc.<domain>. */}}
{{- define "gatehouse.serviceNames" -}}
{{- $name := include "gatehouse.name" . -}}
{{- $ns := .root.Release.Namespace -}}
{{- list (printf "%s.%s.svc" $name $ns) (printf "%s.%s.svc.%s" $name $ns .root.Values.clusterDomain) | toJson -}}
{{- end -}}

{{/*
How a component's serving certificate is obtained: "existingSecret", "certManager" or
"selfManaged". The webhook has no existingSecret.
*/}}
{{- define "gatehouse.tlsMode" -}}
{{- $c := index .root.Values .component -}}
{{- if and (ne .component "webhook") $c.tls.existingSecret -}}
existingSecret
{{- else if .root.Values.certManager.enabled -}}
certManager
{{- else -}}
selfManaged
{{- end -}}
{{- end -}}

{{/* The Secret holding a component's serving certificate (existingSecret or cert-manager's). */}}
{{- define "gatehouse.tlsSecret" -}}
{{- $c := index .root.Values .component -}}
{{- if and (ne .component "webhook") $c.tls.existingSecret -}}
{{- $c.tls.existingSecret -}}
{{- else -}}
{{- include "gatehouse.name" . }}-tls
{{- end -}}
{{- end -}}

{{/*
The arguments that give a component its serving certificate: files from a mounted Secret, or
the self-managed CA in <name>-ca (published in the ConfigMap <name>-ca unless noConfigMap).
*/}}
{{- define "gatehouse.tlsArgs" -}}
{{- $c := index .root.Values .component -}}
{{- $mode := include "gatehouse.tlsMode" . -}}
{{- if eq $mode "selfManaged" -}}
- --self-managed-ca-secret={{ .root.Release.Namespace }}/{{ include "gatehouse.name" . }}-ca
- --self-managed-dns-names={{ concat (include "gatehouse.serviceNames" . | fromJsonArray) ($c.tls.dnsNames | default list) | join "," }}
- --self-managed-ca-duration={{ $c.tls.caDuration }}
- --self-managed-cert-duration={{ $c.tls.certDuration }}
{{- if not .noConfigMap }}
- --self-managed-ca-configmap={{ .root.Release.Namespace }}/{{ include "gatehouse.name" . }}-ca
{{- end }}
{{- else }}
- --tls-cert-file=/etc/gatehouse/tls/tls.crt
- --tls-private-key-file=/etc/gatehouse/tls/tls.key
{{- end -}}
{{- end -}}

{{- define "gatehouse.tlsVolumeMounts" -}}
{{- if ne (include "gatehouse.tlsMode" .) "selfManaged" }}
- {name: tls, mountPath: /etc/gatehouse/tls, readOnly: true}
{{- end -}}
{{- end -}}

{{- define "gatehouse.tlsVolumes" -}}
{{- if ne (include "gatehouse.tlsMode" .) "selfManaged" }}
- name: tls
  secret: {secretName: {{ include "gatehouse.tlsSecret" . }}}
{{- end -}}
{{- end -}}

{{/* The masking key Secret. */}}
{{- define "gatehouse.maskingSecret" -}}
{{- default (printf "%s-masking-key" (include "gatehouse.fullname" .)) .Values.masking.existingSecret -}}
{{- end -}}

{{/* Masking arguments, volume mounts and volumes, shared by every component that masks. */}}
{{- define "gatehouse.maskingArgs" -}}
- --masking-key-file=/etc/gatehouse/masking/key
{{- if .Values.masking.config }}
- --masking-config=/etc/gatehouse/masking-config/masking-config.yaml
{{- end -}}
{{- end -}}

{{- define "gatehouse.maskingVolumeMounts" -}}
- {name: masking, mountPath: /etc/gatehouse/masking, readOnly: true}
{{- if .Values.masking.config }}
- {name: masking-config, mountPath: /etc/gatehouse/masking-config, readOnly: true}
{{- end -}}
{{- end -}}

{{- define "gatehouse.maskingVolumes" -}}
- name: masking
  secret: {secretName: {{ include "gatehouse.maskingSecret" . }}}
{{- if .Values.masking.config }}
- name: masking-config
  configMap: {name: {{ include "gatehouse.fullname" . }}-masking-config}
{{- end -}}
{{- end -}}

{{/*
NATS arguments, volume mounts and volumes of a component (.component: proxy, webhook, enricher,
console, admin): the URL, the CA, the component's own credentials and, for mutual TLS, its client
certificate.
*/}}
{{- define "gatehouse.natsCredentialsSecret" -}}
{{- default (printf "%s-%s-nats" (include "gatehouse.fullname" .root) .component) (index .root.Values.nats.credentialsSecrets .component) -}}
{{- end -}}

{{- define "gatehouse.natsArgs" -}}
{{- $n := .root.Values.nats -}}
{{- range $u := splitList "," $n.url }}
{{- if and (not (hasPrefix "tls://" (trim $u))) (not $n.caSecret) }}
{{- fail (printf "nats.url %s is not a tls:// URL and nats.caSecret is empty: Gatehouse reaches NATS over TLS only" $u) }}
{{- end }}
{{- end -}}
- --nats-url={{ $n.url }}
{{- if $n.caSecret }}
- --nats-ca-file=/etc/gatehouse/nats-ca/ca.crt
{{- end }}
{{- if eq $n.credentialsType "creds" }}
- --nats-creds-file=/etc/gatehouse/nats-creds/creds
{{- else }}
- --nats-nkey-file=/etc/gatehouse/nats-creds/nkey
{{- end }}
{{- if hasKey $n.clientCertificateSecrets .component }}
- --nats-cert-file=/etc/gatehouse/nats-client/tls.crt
- --nats-key-file=/etc/gatehouse/nats-client/tls.key
{{- end -}}
{{- end -}}

{{- define "gatehouse.natsVolumeMounts" -}}
{{- $n := .root.Values.nats -}}
{{- if $n.caSecret }}
- {name: nats-ca, mountPath: /etc/gatehouse/nats-ca, readOnly: true}
{{- end }}
- {name: nats-creds, mountPath: /etc/gatehouse/nats-creds, readOnly: true}
{{- if hasKey $n.clientCertificateSecrets .component }}
- {name: nats-client, mountPath: /etc/gatehouse/nats-client, readOnly: true}
{{- end -}}
{{- end -}}

{{- define "gatehouse.natsVolumes" -}}
{{- $n := .root.Values.nats -}}
{{- if $n.caSecret }}
- name: nats-ca
  secret: {secretName: {{ $n.caSecret }}}
{{- end }}
- name: nats-creds
  secret:
    secretName: {{ include "gatehouse.natsCredentialsSecret" . }}
    items: [{key: {{ $n.credentialsType }}, path: {{ $n.credentialsType }}}]
{{- if hasKey $n.clientCertificateSecrets .component }}
- name: nats-client
  secret: {secretName: {{ index $n.clientCertificateSecrets .component }}}
{{- end -}}
{{- end -}}

{{/* The approval key Secret, and its argument, volume mount and volume (webhook, console). */}}
{{- define "gatehouse.approvalKeySecret" -}}
{{- default (printf "%s-approval-key" (include "gatehouse.fullname" .)) .Values.approvalKey.existingSecret -}}
{{- end -}}

{{- define "gatehouse.approvalKeyArgs" -}}
- --approval-key-file=/etc/gatehouse/approval-key/key
{{- end -}}

{{- define "gatehouse.approvalKeyVolumeMounts" -}}
- {name: approval-key, mountPath: /etc/gatehouse/approval-key, readOnly: true}
{{- end -}}

{{- define "gatehouse.approvalKeyVolumes" -}}
- name: approval-key
  secret:
    secretName: {{ include "gatehouse.approvalKeySecret" . }}
    items: [{key: key, path: key}]
{{- end -}}

{{/* The URL of the approvers' console: webhook.approvals.url, or console.externalURL. */}}
{{- define "gatehouse.consoleURL" -}}
{{- if .Values.webhook.approvals.url -}}
{{- .Values.webhook.approvals.url -}}
{{- else if .Values.console.enabled -}}
{{- .Values.console.externalURL -}}
{{- end -}}
{{- end -}}

{{/* Pod scheduling of a component: anti-affinity, node selector, tolerations, priority. */}}
{{- define "gatehouse.scheduling" -}}
{{- $c := index .root.Values .component -}}
{{- if eq $c.antiAffinity "soft" }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "gatehouse.selectorLabels" . | nindent 12 }}
{{- else if eq $c.antiAffinity "hard" }}
affinity:
  podAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "gatehouse.selectorLabels" . | nindent 10 }}
{{- end }}
{{- with $c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The pod and container security contexts every component shares. */}}
{{- define "gatehouse.podSecurityContext" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: {{ .Values.securityContext.runAsUser }}
  runAsGroup: {{ .Values.securityContext.runAsGroup }}
  fsGroup: {{ .Values.securityContext.runAsGroup }}
  seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "gatehouse.containerSecurityContext" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {drop: ["ALL"]}
{{- end -}}

{{- define "gatehouse.logArgs" -}}
- --log-format={{ .Values.logging.format }}
- --log-level={{ .Values.logging.level }}
{{- end -}}

{{/*
The matchCondition that keeps system components and Gatehouse's own service accounts out of the
webhooks, so that they can never deadlock the cluster.
*/}}
{{- define "gatehouse.notASystemComponent" -}}
- name: not-a-system-component
  expression: >-
    !(request.userInfo.username.startsWith('system:node:') ||
      request.userInfo.username.startsWith('system:kube-') ||
      request.userInfo.username == 'system:apiserver' ||
      request.userInfo.username.startsWith('system:serviceaccount:kube-system:') ||
      request.userInfo.username.startsWith('system:serviceaccount:{{ .Release.Namespace }}:'))
{{- end -}}

{{- define "gatehouse.excludedNamespaces" -}}
{{- include "gatehouse.flowList" (uniq (append .Values.webhook.excludedNamespaces .Release.Namespace)) -}}
{{- end -}}

{{/*
optional includes a template, trimmed, on new lines indented by the given width, or nothing when
it renders empty: (list <indent> <template> <context>).
*/}}
{{- define "gatehouse.optional" -}}
{{- $out := include (index . 1) (index . 2) | trim -}}
{{- if $out }}{{ $out | nindent (index . 0) }}{{ end -}}
{{- end -}}

{{/* The issuerRef of the serving certificates: certManager.issuerRef, or the chart's CA Issuer. */}}
{{- define "gatehouse.certManagerIssuer" -}}
{{- if .Values.certManager.issuerRef -}}
{{- toYaml .Values.certManager.issuerRef -}}
{{- else -}}
kind: Issuer
name: {{ include "gatehouse.fullname" . }}-ca
{{- end -}}
{{- end -}}

{{/* A YAML flow sequence of quoted strings: ["a", "b"]. */}}
{{- define "gatehouse.flowList" -}}
[{{ range $i, $s := . }}{{ if $i }}, {{ end }}{{ $s | quote }}{{ end }}]
{{- end -}}

{{/* The Secret holding the console's session key: console.sessionKey.existingSecret, or the chart's. */}}
{{- define "gatehouse.consoleSessionSecret" -}}
{{- default (printf "%s-session" (include "gatehouse.name" (dict "root" . "component" "console"))) .Values.console.sessionKey.existingSecret -}}
{{- end -}}
