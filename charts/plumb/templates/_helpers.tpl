{{- define "plumb.fullname" -}}
{{- if contains "plumb" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-plumb" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "plumb.labels" -}}
app.kubernetes.io/name: plumb
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "plumb.selector" -}}
app.kubernetes.io/name: plumb
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "plumb.tlsSecret" -}}
{{- printf "%s-tls" (include "plumb.fullname" .) -}}
{{- end -}}

{{- define "plumb.policyHost" -}}
{{- printf "%s-policy.%s.svc" (include "plumb.fullname" .) .Release.Namespace -}}
{{- end -}}

{{- define "plumb.webhookHost" -}}
{{- printf "%s-webhook.%s.svc" (include "plumb.fullname" .) .Release.Namespace -}}
{{- end -}}
