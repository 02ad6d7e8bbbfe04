{{/* Name of the release's objects: the release name, plus "-kubeplug" unless it already says so. */}}
{{- define "kubeplug.fullname" -}}
{{- if contains "kubeplug" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-kubeplug" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kubeplug.selectorLabels" -}}
app.kubernetes.io/name: kubeplug
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kubeplug.labels" -}}
{{ include "kubeplug.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kubeplug.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kubeplug.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}
