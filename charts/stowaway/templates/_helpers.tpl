{{/*
Names, labels and small derived values shared by the templates.
*/}}

{{/* The chart name (nameOverride wins). */}}
{{- define "stowaway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The base name of every object: fullnameOverride, else the release name when it already holds
the chart name, else "<release>-<chart>". Kept to 52 characters so that suffixes such as
"-webhook" and "-executor" still fit the 63 of a DNS label.
*/}}
{{- define "stowaway.fullname" -}}
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

{{/* "<chart>-<version>" for the helm.sh/chart label. */}}
{{- define "stowaway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of the operator's objects. */}}
{{- define "stowaway.labels" -}}
{{ include "stowaway.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels of the executor Jobs' objects (service accounts, bindings). */}}
{{- define "stowaway.executorLabels" -}}
{{ include "stowaway.commonLabels" . }}
app.kubernetes.io/component: executor
{{- end }}

{{/* Labels of every object but the component. */}}
{{- define "stowaway.commonLabels" -}}
helm.sh/chart: {{ include "stowaway.chart" . }}
app.kubernetes.io/name: {{ include "stowaway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: stowaway
{{- end }}

{{/* Labels that select the operator's pods (never change them on upgrade). */}}
{{- define "stowaway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stowaway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The operator's service account. */}}
{{- define "stowaway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "stowaway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The service account of executor Jobs ("" when Jobs use their namespace's default). */}}
{{- define "stowaway.executorServiceAccountName" -}}
{{- if .Values.executor.serviceAccount.create }}
{{- default (printf "%s-executor" (include "stowaway.fullname" .)) .Values.executor.serviceAccount.name }}
{{- else }}
{{- .Values.executor.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The namespaces that get the executor service account: the release's, then the listed ones. */}}
{{- define "stowaway.executorNamespaces" -}}
{{- $namespaces := list .Release.Namespace }}
{{- range .Values.executor.namespaces }}
{{- $namespaces = append $namespaces . }}
{{- end }}
{{- $namespaces | uniq | toJson }}
{{- end }}

{{/* The operator image, "<repository>:<tag>" (tag: the chart's appVersion by default). */}}
{{- define "stowaway.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The image of executor Jobs (the operator's own unless set). */}}
{{- define "stowaway.executorImage" -}}
{{- if .Values.executor.image.repository }}
{{- printf "%s:%s" .Values.executor.image.repository (default .Chart.AppVersion .Values.executor.image.tag) }}
{{- else }}
{{- include "stowaway.image" . }}
{{- end }}
{{- end }}

{{/* The webhook Service; its DNS name is what the serving certificate is issued for. */}}
{{- define "stowaway.webhookServiceName" -}}
{{- printf "%s-webhook" (include "stowaway.fullname" .) }}
{{- end }}

{{/* The Secret holding the webhook's serving certificate (tls.crt, tls.key). */}}
{{- define "stowaway.webhookSecretName" -}}
{{- if eq .Values.webhook.certificate.mode "secret" }}
{{- required "webhook.certificate.secret.name is required with mode=secret"
  .Values.webhook.certificate.secret.name }}
{{- else }}
{{- printf "%s-webhook-tls" (include "stowaway.fullname" .) }}
{{- end }}
{{- end }}

{{/* The cert-manager Certificate of the webhook (certManager mode). */}}
{{- define "stowaway.webhookCertificateName" -}}
{{- printf "%s-webhook" (include "stowaway.fullname" .) }}
{{- end }}

{{/* Where the webhook certificate is mounted in the operator's container. */}}
{{- define "stowaway.webhookCertDir" -}}
/etc/stowaway/webhook
{{- end }}
