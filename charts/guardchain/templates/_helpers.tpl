{{- define "guardchain.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 53 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 53 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The Secret the webhook keeps its own CA and serving certificate in
(selfManaged). The webhook creates it; the chart never renders it. */}}
{{- define "guardchain.selfManagedSecret" -}}
{{ include "guardchain.fullname" . }}-selfmanaged
{{- end -}}

{{- define "guardchain.selectorLabels" -}}
app.kubernetes.io/name: guardchain
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "guardchain.labels" -}}
{{ include "guardchain.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* repository:tag or repository@digest */}}
{{- define "guardchain.imageRef" -}}
{{- if .image.digest -}}
{{ .image.repository }}@{{ .image.digest }}
{{- else -}}
{{ .image.repository }}:{{ .image.tag | default .appVersion }}
{{- end -}}
{{- end -}}

{{- define "guardchain.image" -}}
{{ include "guardchain.imageRef" (dict "image" .Values.image "appVersion" .Chart.AppVersion) }}
{{- end -}}

{{- define "guardchain.initImage" -}}
{{ include "guardchain.imageRef" (dict "image" .Values.initImage "appVersion" .Chart.AppVersion) }}
{{- end -}}

{{/* The webhook's config file: webhook.Config as YAML. */}}
{{- define "guardchain.config" -}}
initImage: {{ include "guardchain.initImage" . }}
imagePullPolicy: {{ .Values.initImage.pullPolicy }}
{{ toYaml .Values.config }}
{{- end -}}

{{/* The CEL match condition; the same text as webhook.TargetCondition. */}}
{{- define "guardchain.targetCondition" -}}
{{- $names := list -}}
{{- range .Values.config.containers }}{{ $names = append $names (printf "'%s'" .) }}{{ end -}}
{{- $list := printf "[%s]" (join ", " $names) -}}
object.spec.containers.exists(c, c.name in {{ $list }}) || (has(object.spec.initContainers) && object.spec.initContainers.exists(c, c.name in {{ $list }})) || (has(object.metadata.annotations) && 'guardchain.dev/containers' in object.metadata.annotations)
{{- end -}}
