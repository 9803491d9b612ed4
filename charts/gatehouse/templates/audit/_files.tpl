{{/* kube-apiserver's audit policy (--audit-policy-file). */}}
{{- define "gatehouse.auditPolicy" -}}
# kube-apiserver audit policy for Gatehouse (--audit-policy-file).
#
# Request and response bodies are logged for every write and for every Secret access, so that
# auditors see what changed and what was read; the Gatehouse enricher masks secret values in
# them before it stores anything. Everything else is logged at Metadata level: who, what, when,
# from where, with which result. Rules are evaluated in order; the first match wins.
apiVersion: audit.k8s.io/v1
kind: Policy
# RequestReceived adds nothing the later stages do not have.
omitStages:
  - RequestReceived
# managedFields are noise in stored objects.
omitManagedFields: true
rules:
  # Health and version probes: high volume, no user data.
  - level: None
    nonResourceURLs:
      - /healthz*
      - /livez*
      - /readyz*
      - /version
  # Secrets, read or written: bodies included, masked by the enricher.
  - level: RequestResponse
    resources:
      - group: ""
        resources: ["secrets"]
  # Every write, including exec, attach and port-forward (verb create on pods/exec, ...),
  # token requests and RBAC changes.
  - level: RequestResponse
    verbs: ["create", "update", "patch", "delete", "deletecollection"]
  # Reads of everything else: metadata only.
  - level: Metadata
{{- end -}}

{{/* The intake's URL as kube-apiserver reaches it. */}}
{{- define "gatehouse.auditServer" -}}
{{- $svc := include "gatehouse.name" (dict "root" . "component" "enricher") -}}
{{- if .Values.audit.server -}}
{{- .Values.audit.server -}}
{{- else if .Values.enricher.service.clusterIP -}}
https://{{ .Values.enricher.service.clusterIP }}:8443/audit
{{- else -}}
https://{{ $svc }}.{{ .Release.Namespace }}.svc:8443/audit
{{- end -}}
{{- end -}}

{{/* kube-apiserver's audit webhook kubeconfig (--audit-webhook-config-file). */}}
{{- define "gatehouse.auditWebhookKubeconfig" -}}
{{- $svc := include "gatehouse.name" (dict "root" . "component" "enricher") -}}
{{- $dir := .Values.audit.directory -}}
# kube-apiserver audit webhook configuration for Gatehouse (--audit-webhook-config-file).
#
# Run kube-apiserver with:
#   --audit-policy-file={{ $dir }}/audit-policy.yaml
#   --audit-webhook-config-file={{ $dir }}/audit-webhook.kubeconfig   (this file)
#   --audit-webhook-mode=batch
# and mount {{ $dir }} into its pod. The batch defaults (400 events, 30 s, 10
# batches/s) suit most clusters; --audit-webhook-batch-max-wait lowers the delay.
#
# server: the enricher's intake (path /audit), as kube-apiserver reaches it. kube-apiserver
#   runs on the host network and usually cannot resolve cluster DNS names: pin the enricher
#   Service's cluster IP (enricher.service.clusterIP) or set audit.server to a node port or a
#   load balancer; tls-server-name keeps the certificate check on the Service's DNS name.
# certificate-authority: the CA of the enricher's serving certificate (the ConfigMap
#   {{ $svc }}-ca, key ca.crt, with the self-managed CA; ca.crt of the Secret {{ $svc }}-tls
#   with cert-manager).
# client-certificate, client-key: kube-apiserver's client certificate for the intake, signed by
#   the CA in the ConfigMap enricher.clientCAConfigMap. The intake refuses clients without one,
#   so that nobody else can add events to the audit trail.
{{- if .Values.enricher.backstop.enabled }}
#
# Also give kube-apiserver its log backend, the webhook's backstop, which the enricher follows
# (the DaemonSet {{ include "gatehouse.name" (dict "root" . "component" "enricher-backstop") }}; see docs/audit-pipeline.md):
#   --audit-log-path={{ .Values.enricher.backstop.auditLogPath }} --audit-log-format=json
#   --audit-log-maxsize=100 --audit-log-maxbackup=10 (and no --audit-log-compress)
{{- end }}
apiVersion: v1
kind: Config
clusters:
  - name: gatehouse-enricher
    cluster:
      server: {{ include "gatehouse.auditServer" . }}
      certificate-authority: {{ $dir }}/{{ .Values.audit.caFile }}
      {{- if or .Values.audit.server .Values.enricher.service.clusterIP }}
      tls-server-name: {{ $svc }}.{{ .Release.Namespace }}.svc
      {{- end }}
users:
  - name: kube-apiserver
    user:
      client-certificate: {{ $dir }}/{{ .Values.audit.clientCertificateFile }}
      client-key: {{ $dir }}/{{ .Values.audit.clientKeyFile }}
contexts:
  - name: gatehouse-enricher
    context:
      cluster: gatehouse-enricher
      user: kube-apiserver
current-context: gatehouse-enricher
{{- end -}}
