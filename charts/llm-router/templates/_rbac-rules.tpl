{{- /* Generated from llm_router.operator.rbac by scripts/sync_chart.py (make chart-sync): do not edit. */}}
{{- define "llm-router.clusterRules" -}}
- {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["list", "watch"]}
- {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]}
{{- end }}
{{- define "llm-router.namespacedRules" -}}
- {"apiGroups": ["llm-router.io"], "resources": ["downstreamllms", "routingpolicies"], "verbs": ["get", "list", "watch", "patch"]}
- {"apiGroups": ["llm-router.io"], "resources": ["downstreamllms/status", "routingpolicies/status"], "verbs": ["patch"]}
- {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "watch"]}
- {"apiGroups": [""], "resources": ["configmaps", "services"], "verbs": ["get", "list", "create", "patch", "delete"]}
- {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "create", "patch", "delete"]}
- {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": ["get", "list", "create", "patch", "delete"]}
- {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": ["get", "list", "create", "patch", "delete"]}
- {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["get", "list", "create", "patch", "delete"]}
- {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}
{{- end }}
