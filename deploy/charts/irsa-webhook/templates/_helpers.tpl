{{/* Name of the chart, or nameOverride. */}}
{{- define "irsa-webhook.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of every resource: fullnameOverride, else "<release>-<name>", or the release name
alone when it already contains the chart name. At most 52 characters, so that suffixed names
("-selfsigned", "-serving") stay within the 63 characters of a label value.
*/}}
{{- define "irsa-webhook.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "irsa-webhook.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the webhook pods; they never change across upgrades. */}}
{{- define "irsa-webhook.selectorLabels" -}}
app.kubernetes.io/name: {{ include "irsa-webhook.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end }}

{{/* Labels of every resource. */}}
{{- define "irsa-webhook.labels" -}}
{{ include "irsa-webhook.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "irsa-webhook.chart" . }}
{{- end }}

{{- define "irsa-webhook.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "irsa-webhook.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "irsa-webhook.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Name of both webhook configurations (they are of different kinds). */}}
{{- define "irsa-webhook.webhookConfigurationName" -}}
{{- include "irsa-webhook.fullname" . }}
{{- end }}

{{/* Whether the ServiceAccount trust check and its ValidatingWebhookConfiguration are on. */}}
{{- define "irsa-webhook.trustCheckEnabled" -}}
{{- if ne .Values.trustCheck.mode "off" }}true{{ end }}
{{- end }}

{{/* Excluded namespaces: the configured ones plus the release namespace, as a JSON list. */}}
{{- define "irsa-webhook.excludedNamespaces" -}}
{{- concat .Values.webhook.excludedNamespaces (list .Release.Namespace) | uniq | toJson }}
{{- end }}

{{/* Secret holding the serving certificate. */}}
{{- define "irsa-webhook.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "irsa-webhook.fullname" .)) .Values.certs.secretName }}
{{- end }}

{{/* DNS names of the serving certificate, as a JSON list. */}}
{{- define "irsa-webhook.dnsNames" -}}
{{- if .Values.certs.dnsNames }}
{{- toJson .Values.certs.dnsNames }}
{{- else }}
{{- $svc := include "irsa-webhook.fullname" . }}
{{- list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) | toJson }}
{{- end }}
{{- end }}

{{/* Name of the serving Certificate in cert-manager mode. */}}
{{- define "irsa-webhook.servingCertificateName" -}}
{{- printf "%s-serving" (include "irsa-webhook.fullname" .) }}
{{- end }}

{{/*
caBundle of the webhook configurations in provided mode, base64-encoded. certs.caBundle may be
PEM (encoded here) or already base64.
*/}}
{{- define "irsa-webhook.providedCABundle" -}}
{{- $ca := .Values.certs.caBundle | trim }}
{{- if hasPrefix "-----BEGIN" $ca }}
{{- printf "%s\n" $ca | b64enc }}
{{- else }}
{{- $ca | nospace }}
{{- end }}
{{- end }}

{{/* Annotations of both webhook configurations. */}}
{{- define "irsa-webhook.webhookConfigurationAnnotations" -}}
{{- if eq .Values.certs.mode "cert-manager" -}}
annotations:
  cert-manager.io/inject-ca-from: {{ printf "%s/%s" .Release.Namespace (include "irsa-webhook.servingCertificateName" .) }}
{{- end }}
{{- end }}

{{/* clientConfig of a webhook; pass (dict "ctx" $ "path" "/...") */}}
{{- define "irsa-webhook.clientConfig" -}}
{{- $ := .ctx -}}
clientConfig:
  service:
    name: {{ include "irsa-webhook.fullname" $ }}
    namespace: {{ $.Release.Namespace }}
    path: {{ .path }}
    port: {{ $.Values.service.port }}
  {{- if eq $.Values.certs.mode "provided" }}
  caBundle: {{ include "irsa-webhook.providedCABundle" $ }}
  {{- end }}
{{- end }}

{{/* namespaceSelector of both webhooks. */}}
{{- define "irsa-webhook.namespaceSelector" -}}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ include "irsa-webhook.excludedNamespaces" . }}
    {{- if .Values.webhook.namespaceOptIn.enabled }}
    - key: {{ .Values.webhook.namespaceOptIn.labelKey }}
      operator: In
      values: [{{ .Values.webhook.namespaceOptIn.labelValue | quote }}]
    {{- end }}
{{- end }}

{{/*
Checks of what the schema cannot express. Every template includes it first, so that whichever
is rendered first reports all problems at once, each with what to change.
*/}}
{{- define "irsa-webhook.validate" -}}
{{- $errs := list }}
{{- if eq .Values.certs.mode "provided" }}
{{- if not .Values.certs.secretName }}
{{- $errs = append $errs (printf "certs.mode=provided needs certs.secretName: the name of an existing Secret in namespace %q holding tls.crt and tls.key" .Release.Namespace) }}
{{- end }}
{{- $ca := .Values.certs.caBundle | trim }}
{{- if not $ca }}
{{- $errs = append $errs "certs.mode=provided needs certs.caBundle: the PEM CA certificate that signed the serving certificate, which the API server uses to verify the webhook" }}
{{- else if not (or (hasPrefix "-----BEGIN CERTIFICATE-----" $ca) (hasPrefix "-----BEGIN CERTIFICATE-----" (b64dec $ca))) }}
{{- $errs = append $errs "certs.caBundle must be a PEM certificate (-----BEGIN CERTIFICATE-----) or the base64 encoding of one" }}
{{- end }}
{{- end }}
{{- if and (not .Values.serviceAccount.create) (not .Values.serviceAccount.name) }}
{{- $errs = append $errs "serviceAccount.create=false needs serviceAccount.name: the name of an existing ServiceAccount in the release namespace" }}
{{- end }}
{{- if ne (dir .Values.webhook.tlsCertFile) (dir .Values.webhook.tlsKeyFile) }}
{{- $errs = append $errs (printf "webhook.tlsCertFile (%s) and webhook.tlsKeyFile (%s) must be in the same directory: the chart mounts the certificate there" .Values.webhook.tlsCertFile .Values.webhook.tlsKeyFile) }}
{{- end }}
{{- $ports := list (int .Values.webhook.port) (int .Values.healthProbe.port) }}
{{- if .Values.metrics.enabled }}{{ $ports = append $ports (int .Values.metrics.port) }}{{ end }}
{{- if ne (len $ports) (len (uniq $ports)) }}
{{- $errs = append $errs (printf "webhook.port, healthProbe.port and metrics.port must differ, got %v" $ports) }}
{{- end }}
{{- $min := .Values.podDisruptionBudget.minAvailable }}
{{- if and .Values.podDisruptionBudget.enabled (not (kindIs "string" $min)) (gt (int .Values.replicaCount) 0) (ge (int $min) (int .Values.replicaCount)) }}
{{- $errs = append $errs (printf "podDisruptionBudget.minAvailable (%v) must be below replicaCount (%v), or no node running a webhook pod could be drained; lower it or set podDisruptionBudget.enabled=false" $min .Values.replicaCount) }}
{{- end }}
{{- if and .Values.webhook.namespaceOptIn.enabled (eq .Values.webhook.namespaceOptIn.labelKey "kubernetes.io/metadata.name") }}
{{- $errs = append $errs "webhook.namespaceOptIn.labelKey must not be kubernetes.io/metadata.name: list namespaces in webhook.excludedNamespaces instead" }}
{{- end }}
{{- if and (not .Values.webhook.mutating.enabled) (eq .Values.trustCheck.mode "off") }}
{{- $errs = append $errs "webhook.mutating.enabled=false with trustCheck.mode=off leaves the webhook nothing to do: set trustCheck.mode to warn or enforce" }}
{{- end }}
{{- if $errs }}
{{- fail (printf "invalid values:\n  - %s" (join "\n  - " $errs)) }}
{{- end }}
{{- end }}
