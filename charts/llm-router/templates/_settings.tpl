{{/* The operator's settings file (llm_router.operator.settings.OperatorSettings, snake_case) from the values.
Every value goes in through toJson (JSON is YAML), so no value can change the document's structure. */}}
{{- define "llm-router.settings" -}}
{{- $proxy := .Values.proxy }}
{{- $triton := .Values.triton }}
watch_namespaces: {{ toJson (default (list) .Values.watchNamespaces) }}
version: {{ toJson .Chart.AppVersion }}
model_repository: {{ toJson .Values.operator.modelRepository }}
proxy:
  image: {{ include "llm-router.image" (dict "image" $proxy.image "global" .Values.global) | toJson }}
  image_pull_policy: {{ toJson $proxy.image.pullPolicy }}
  replicas: {{ toJson $proxy.replicas }}
  resources: {{ toJson $proxy.resources }}
  autoscaling:
    enabled: {{ toJson $proxy.autoscaling.enabled }}
    min_replicas: {{ toJson $proxy.autoscaling.minReplicas }}
    max_replicas: {{ toJson $proxy.autoscaling.maxReplicas }}
    target_cpu_utilization: {{ toJson $proxy.autoscaling.targetCPUUtilization }}
  model_repository: {{ toJson $proxy.modelRepository }}
  classifier_timeout_ms: {{ toJson $proxy.classifierTimeoutMs }}
  log_prompts: {{ toJson $proxy.logPrompts }}
  log_format: {{ toJson $proxy.logFormat }}
  drain:
    delay_seconds: {{ toJson $proxy.drain.delaySeconds }}
    timeout_seconds: {{ toJson $proxy.drain.timeoutSeconds }}
  pod_disruption_budget:
    enabled: {{ toJson $proxy.podDisruptionBudget.enabled }}
    min_available: {{ toJson $proxy.podDisruptionBudget.minAvailable }}
  network_policy:
    enabled: {{ toJson $proxy.networkPolicy.enabled }}
    allow_from:
    {{- range $proxy.networkPolicy.allowFrom }}
      - namespace_labels: {{ toJson (default (dict) .namespaceLabels) }}
        pod_labels: {{ toJson (default (dict) .podLabels) }}
    {{- else }} []
    {{- end }}
  client_auth:
    enabled: {{ toJson $proxy.clientAuth.enabled }}
    secret_name: {{ if $proxy.clientAuth.secretName }}{{ toJson $proxy.clientAuth.secretName }}{{ else }}null{{ end }}
    secret_key: {{ toJson $proxy.clientAuth.secretKey }}
triton:
  image: {{ include "llm-router.image" (dict "image" $triton.image "global" .Values.global) | toJson }}
  image_pull_policy: {{ toJson $triton.image.pullPolicy }}
  replicas: {{ toJson $triton.replicas }}
  gpus: {{ toJson $triton.gpus }}
  instances_per_model: {{ toJson $triton.instancesPerModel }}
  resources: {{ toJson $triton.resources }}
  node_selector: {{ toJson (default (dict) $triton.nodeSelector) }}
  tolerations: {{ toJson (default (list) $triton.tolerations) }}
  model_repository: {{ toJson $triton.modelRepository }}
{{- end }}
