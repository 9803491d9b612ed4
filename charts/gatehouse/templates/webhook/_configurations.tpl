{{/*
The admission webhook configurations. They are not applied by Helm: the webhook registers them
once it answers (package registration), from the ConfigMap in configurations.yaml.
*/}}
{{/* What the privileged (Fail) webhooks select: the others leave it to them. */}}
{{- define "gatehouse.notPrivileged" -}}
- name: not-handled-by-a-privileged-webhook
  expression: >-
    !((request.resource.group == '' && request.resource.resource == 'secrets') ||
      (request.resource.group == '' && request.resource.resource == 'pods' && request.subResource == 'ephemeralcontainers') ||
      (request.resource.group == '' && request.resource.resource == 'namespaces' && request.operation == 'DELETE') ||
      (request.resource.group == 'rbac.authorization.k8s.io' &&
        request.resource.resource in ['rolebindings', 'clusterrolebindings', 'roles', 'clusterroles'] &&
        request.operation != 'DELETE') ||
      (request.resource.group == 'apiextensions.k8s.io' && request.resource.resource == 'customresourcedefinitions') ||
      request.resource.group == 'gatehouse.dev')
{{- end -}}

{{- define "gatehouse.webhookConfigurations" -}}
{{- $svc := include "gatehouse.name" (dict "root" . "component" "webhook") -}}
{{- $ns := .Release.Namespace -}}
{{- $labels := include "gatehouse.selectorLabels" (dict "root" . "component" "webhook") -}}
# The validating admission webhook: enforces the AccessPolicies on writes that reach
# kube-apiserver by any path, not only through the Gatehouse proxy.
#
# Four webhooks, one per failure mode:
#
#   connect     CONNECT pods/exec, pods/attach, pods/portforward and the pod, service and node
#               proxies. failurePolicy Fail. No namespaceSelector: nothing needs exec to start,
#               so this cannot deadlock, and exec into kube-system is what it must catch.
#   privileged  Secret writes, Role and RoleBinding creation/updates and ephemeral (debug)
#               containers in ordinary namespaces. failurePolicy Fail.
#   cluster     Namespace deletion, ClusterRole and ClusterRoleBinding creation/updates, CRD
#               writes and every gatehouse.dev object. failurePolicy Fail.
#   held        Every other write through the gateway that the proxy's own evaluation holds for
#               approval, or cannot decide without the final object (the proxy marks it with the
#               extra gatehouse.dev/hold): custom requireApproval rules on any resource.
#               failurePolicy Fail: such a write never passes unapproved because the webhook is
#               down.
#   general     Every other write, including scale. failurePolicy Ignore: when the webhook is
#               down these pass and kube-apiserver's audit log remains the record.
#
# The Fail set is what Gatehouse calls privileged (policy.Privileged): if the webhook cannot be
# reached, cannot evaluate its policies or cannot record its decision, those requests are
# refused; all others pass, but those the proxy marked held. The held and general webhooks'
# matchConditions exclude the privileged set, and each other, so that no request is evaluated
# twice.
#
# Never deadlock the cluster:
#   - the webhook registers these configurations itself, only once it answers, so they never
#     send requests to a webhook that is not there yet (an install cannot lock its
#     administrator out);
#   - namespaceSelector skips {{ uniq (append .Values.webhook.excludedNamespaces $ns) | join ", " }} (where the
#     webhook itself runs) for everything but the connect webhook;
#   - matchConditions skip system components: nodes, system:kube-* (controller manager,
#     scheduler, proxy), system:apiserver, and the service accounts of kube-system and
#     {{ $ns }};
#   - timeoutSeconds {{ .Values.webhook.timeoutSeconds }}, well under kube-apiserver's 30 s request budget;
#   - kube-apiserver never sends webhook configurations to webhooks, so these can always be
#     deleted to recover (docs/deploying.md, break-glass).
#
# sideEffects NoneOnDryRun: the approval hook consumes a grant when it admits an approved
# operation, but never for a dry run. The trail record a decision produces is an audit record,
# not a change to the cluster.
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: {{ include "gatehouse.fullname" . }}-validating
  labels:
    {{- $labels | nindent 4 }}
  {{- if .Values.certManager.enabled }}
  annotations:
    cert-manager.io/inject-ca-from: {{ $ns }}/{{ $svc }}
  {{- end }}
webhooks:
- name: connect.validate.gatehouse.dev
  clientConfig:
    service: {name: {{ $svc }}, namespace: {{ $ns }}, path: /validate, port: 443}
  rules:
  - operations: [CONNECT]
    apiGroups: [""]
    apiVersions: [v1]
    resources: [pods/exec, pods/attach, pods/portforward, pods/proxy, services/proxy, nodes/proxy]
    scope: "*"
  matchConditions:
  {{- include "gatehouse.notASystemComponent" . | nindent 2 }}
  failurePolicy: Fail
  matchPolicy: Equivalent
  sideEffects: NoneOnDryRun
  admissionReviewVersions: [v1]
  timeoutSeconds: {{ .Values.webhook.timeoutSeconds }}
- name: privileged.validate.gatehouse.dev
  clientConfig:
    service: {name: {{ $svc }}, namespace: {{ $ns }}, path: /validate, port: 443}
  rules:
  - operations: [CREATE, UPDATE, DELETE]
    apiGroups: [""]
    apiVersions: [v1]
    resources: [secrets]
    scope: Namespaced
  - operations: [CREATE, UPDATE]
    apiGroups: [rbac.authorization.k8s.io]
    apiVersions: ["*"]
    resources: [rolebindings, roles]
    scope: Namespaced
  - operations: [UPDATE]
    apiGroups: [""]
    apiVersions: [v1]
    resources: [pods/ephemeralcontainers]
    scope: Namespaced
  namespaceSelector:
    matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ include "gatehouse.excludedNamespaces" . }}
  matchConditions:
  {{- include "gatehouse.notASystemComponent" . | nindent 2 }}
  failurePolicy: Fail
  matchPolicy: Equivalent
  sideEffects: NoneOnDryRun
  admissionReviewVersions: [v1]
  timeoutSeconds: {{ .Values.webhook.timeoutSeconds }}
- name: cluster.validate.gatehouse.dev
  clientConfig:
    service: {name: {{ $svc }}, namespace: {{ $ns }}, path: /validate, port: 443}
  rules:
  - operations: [DELETE]
    apiGroups: [""]
    apiVersions: [v1]
    resources: [namespaces]
    scope: Cluster
  - operations: [CREATE, UPDATE]
    apiGroups: [rbac.authorization.k8s.io]
    apiVersions: ["*"]
    resources: [clusterrolebindings, clusterroles]
    scope: Cluster
  - operations: [CREATE, UPDATE, DELETE]
    apiGroups: [apiextensions.k8s.io]
    apiVersions: ["*"]
    resources: [customresourcedefinitions]
    scope: Cluster
  - operations: [CREATE, UPDATE, DELETE]
    apiGroups: [gatehouse.dev]
    apiVersions: ["*"]
    resources: ["*"]
    scope: "*"
  matchConditions:
  {{- include "gatehouse.notASystemComponent" . | nindent 2 }}
  failurePolicy: Fail
  matchPolicy: Equivalent
  sideEffects: NoneOnDryRun
  admissionReviewVersions: [v1]
  timeoutSeconds: {{ .Values.webhook.timeoutSeconds }}
- name: held.validate.gatehouse.dev
  clientConfig:
    service: {name: {{ $svc }}, namespace: {{ $ns }}, path: /validate, port: 443}
  rules:
  - operations: [CREATE, UPDATE, DELETE]
    apiGroups: ["*"]
    apiVersions: ["*"]
    resources: ["*", "*/scale"]
    scope: "*"
  namespaceSelector:
    matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ include "gatehouse.excludedNamespaces" . }}
  matchConditions:
  {{- include "gatehouse.notASystemComponent" . | nindent 2 }}
  {{- include "gatehouse.notPrivileged" . | nindent 2 }}
  - name: held-by-the-gateway
    expression: >-
      has(request.userInfo.extra) && 'gatehouse.dev/hold' in request.userInfo.extra
  failurePolicy: Fail
  matchPolicy: Equivalent
  sideEffects: NoneOnDryRun
  admissionReviewVersions: [v1]
  timeoutSeconds: {{ .Values.webhook.timeoutSeconds }}
- name: general.validate.gatehouse.dev
  clientConfig:
    service: {name: {{ $svc }}, namespace: {{ $ns }}, path: /validate, port: 443}
  rules:
  - operations: [CREATE, UPDATE, DELETE]
    apiGroups: ["*"]
    apiVersions: ["*"]
    resources: ["*", "*/scale"]
    scope: "*"
  namespaceSelector:
    matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ include "gatehouse.excludedNamespaces" . }}
  matchConditions:
  {{- include "gatehouse.notASystemComponent" . | nindent 2 }}
  {{- include "gatehouse.notPrivileged" . | nindent 2 }}
  - name: not-held-by-the-gateway
    expression: >-
      !has(request.userInfo.extra) || !('gatehouse.dev/hold' in request.userInfo.extra)
  failurePolicy: Ignore
  matchPolicy: Equivalent
  sideEffects: NoneOnDryRun
  admissionReviewVersions: [v1]
  timeoutSeconds: {{ .Values.webhook.timeoutSeconds }}
---
# The mutating admission webhook: owns the annotations in Gatehouse's namespace (gatehouse.dev/).
#
#   stamp    writes through the Gatehouse gateway (matchConditions: the gateway's session extra),
#            subresources included: stamps the object with the session
#            (gatehouse.dev/session-id) and, for an approved change, the approval
#            (gatehouse.dev/approval-id), so `kubectl get -o yaml` shows where an object's last
#            change came from; any other gatehouse.dev/ value the client wrote is undone.
#            failurePolicy Fail: a change through the gateway is not made unattributed; it only
#            affects gateway traffic, which fails anyway when Gatehouse is down.
#   guard    every other write that carries a gatehouse.dev/ annotation, in the new or the stored
#            object (matchConditions), subresources included: a direct client cannot forge or
#            change the stamps; what the stored object has stays. failurePolicy Ignore: direct
#            writes never depend on Gatehouse being up; the trail does not trust an annotation
#            for who acted.
#
# Both change nothing else. The same namespaces are skipped as for the validating webhooks, and
# system components are left alone.
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: {{ include "gatehouse.fullname" . }}-mutating
  labels:
    {{- $labels | nindent 4 }}
  {{- if .Values.certManager.enabled }}
  annotations:
    cert-manager.io/inject-ca-from: {{ $ns }}/{{ $svc }}
  {{- end }}
webhooks:
- name: stamp.mutate.gatehouse.dev
  clientConfig:
    service: {name: {{ $svc }}, namespace: {{ $ns }}, path: /mutate, port: 443}
  rules:
  - operations: [CREATE, UPDATE]
    apiGroups: ["*"]
    apiVersions: ["*"]
    resources: ["*/*"]
    scope: "*"
  namespaceSelector:
    matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ include "gatehouse.excludedNamespaces" . }}
  matchConditions:
  - name: through-the-gateway
    expression: >-
      has(request.userInfo.extra) && 'gatehouse.dev/session-id' in request.userInfo.extra
  failurePolicy: Fail
  matchPolicy: Equivalent
  reinvocationPolicy: Never
  sideEffects: None
  admissionReviewVersions: [v1]
  timeoutSeconds: {{ .Values.webhook.timeoutSeconds }}
- name: guard.mutate.gatehouse.dev
  clientConfig:
    service: {name: {{ $svc }}, namespace: {{ $ns }}, path: /mutate, port: 443}
  rules:
  - operations: [CREATE, UPDATE]
    apiGroups: ["*"]
    apiVersions: ["*"]
    resources: ["*/*"]
    scope: "*"
  namespaceSelector:
    matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ include "gatehouse.excludedNamespaces" . }}
  matchConditions:
  - name: not-through-the-gateway
    expression: >-
      !has(request.userInfo.extra) || !('gatehouse.dev/session-id' in request.userInfo.extra)
  {{- include "gatehouse.notASystemComponent" . | nindent 2 }}
  - name: carries-gatehouse-annotations
    expression: >-
      (object != null && has(object.metadata) && has(object.metadata.annotations) &&
        object.metadata.annotations.exists(k, k.startsWith('gatehouse.dev/'))) ||
      (oldObject != null && has(oldObject.metadata) && has(oldObject.metadata.annotations) &&
        oldObject.metadata.annotations.exists(k, k.startsWith('gatehouse.dev/')))
  failurePolicy: Ignore
  matchPolicy: Equivalent
  reinvocationPolicy: Never
  sideEffects: None
  admissionReviewVersions: [v1]
  timeoutSeconds: {{ .Values.webhook.timeoutSeconds }}
{{- end -}}
