{{/* Names and labels shared by the chart's templates. */}}

{{- define "llm-router.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "llm-router.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The operator's objects: Deployment, ConfigMap, ServiceAccount, roles. */}}
{{- define "llm-router.operatorName" -}}
{{- printf "%s-operator" (include "llm-router.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "llm-router.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "llm-router.operatorName" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "llm-router.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | quote }}
app.kubernetes.io/name: {{ include "llm-router.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: llm-router
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
{{- end }}

{{/* Pod selector of the operator: never changes between upgrades (a Deployment's selector is immutable). */}}
{{- define "llm-router.operatorSelector" -}}
app.kubernetes.io/name: {{ include "llm-router.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/component: operator
{{- end }}

{{/* An image reference: (dict "image" .Values.x.image "global" .Values.global). */}}
{{- define "llm-router.image" -}}
{{- $registry := default .image.registry .global.imageRegistry }}
{{- if $registry }}
{{- printf "%s/%s:%s" $registry .image.repository .image.tag }}
{{- else }}
{{- printf "%s:%s" .image.repository .image.tag }}
{{- end }}
{{- end }}

{{/* The namespaces the proxies run in, as a ServiceMonitor namespaceSelector. */}}
{{- define "llm-router.namespaceSelector" -}}
{{- if .Values.watchNamespaces }}
matchNames: {{ toJson .Values.watchNamespaces }}
{{- else }}
any: true
{{- end }}
{{- end }}
