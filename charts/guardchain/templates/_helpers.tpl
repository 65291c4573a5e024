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

{{/* The Secret the previous chart rendered for the self-managed CA
(helm.sh/resource-policy: keep, so it outlives the upgrade). The webhook
reads it when it first makes its own Secret, and takes its CA over. Drop
this, its RBAC rule and --legacy-cert-secret one release later. */}}
{{- define "guardchain.legacySecret" -}}
{{ include "guardchain.fullname" . }}-tls
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
{{- $cfg := deepCopy .Values.config }}
{{- /* An empty sizeLimit is no limit: left out, not passed on as "". */}}
{{- $size := ($cfg.volume | default dict).sizeLimit }}
{{- if or (kindIs "invalid" $size) (and (kindIs "string" $size) (eq $size "")) }}{{ $_ := unset ($cfg.volume | default dict) "sizeLimit" }}{{ end }}
{{ toYaml $cfg }}
{{- end -}}

{{/* The config's ConfigMap, named by a hash of the config. */}}
{{- define "guardchain.configMapName" -}}
{{ include "guardchain.fullname" . }}-config-{{ include "guardchain.config" . | sha256sum | trunc 10 }}
{{- end -}}

{{/* config.containers as a CEL list literal. */}}
{{- define "guardchain.celContainers" -}}
{{- $names := list -}}
{{- range .Values.config.containers }}{{ $names = append $names (printf "'%s'" .) }}{{ end -}}
{{- printf "[%s]" (join ", " $names) -}}
{{- end -}}

{{/* The namespaces guardchain acts in: webhook.namespaces, or (empty) every
one, but never kube-system nor its own. */}}
{{- define "guardchain.namespaceSelector" -}}
namespaceSelector:
  matchExpressions:
  {{- with .Values.webhook.namespaces }}
  - key: kubernetes.io/metadata.name
    operator: In
    values:
      {{- toYaml . | nindent 6 }}
  {{- end }}
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values:
    - kube-system
    {{- if ne .Release.Namespace "kube-system" }}
    - {{ .Release.Namespace }}
    {{- end }}
  {{- with .Values.config.namespaceOptOutLabel }}
  - key: {{ . }}
    operator: NotIn
    values: [disabled]
  {{- end }}
{{- end -}}

{{/* enforcement.action resolved: Deny, Warn or off. auto: Deny while the
webhook fails closed and denies what it cannot guard; Warn otherwise, since
Deny would refuse exactly the pods failurePolicy Ignore or conflict skip let
through. */}}
{{- define "guardchain.enforcementAction" -}}
{{- $a := (.Values.enforcement | default dict).action | default "auto" -}}
{{- if eq $a "auto" -}}
{{- if not (and (eq .Values.webhook.failurePolicy "Fail") (eq .Values.config.conflict "deny")) -}}Warn
{{- else if include "guardchain.backstopArrives" . -}}Warn
{{- else -}}Deny{{- end -}}
{{- else -}}{{ $a }}{{- end -}}
{{- end -}}

{{/* yes when this upgrade brings the backstop to a release that ran without
it (v0.1.0, or enforcement.action=off): the previous replicas inject pods of
their own shape until the rollout replaces them, which the policy would
refuse, so auto warns for this revision; the next helm upgrade denies. */}}
{{- define "guardchain.backstopArrives" -}}
{{- if .Release.IsUpgrade -}}
{{- if not (lookup "admissionregistration.k8s.io/v1" "ValidatingAdmissionPolicy" "" (include "guardchain.fullname" .)) }}yes{{ end -}}
{{- end -}}
{{- end -}}

{{/* The CEL match condition that picks sandbox pods by OpenShell's marks;
the same text as webhook.SandboxCondition. */}}
{{- define "guardchain.sandboxCondition" -}}
(has(object.metadata.annotations) && 'openshell.io/sandbox-id' in object.metadata.annotations) || (has(object.metadata.labels) && 'agents.x-k8s.io/sandbox-name-hash' in object.metadata.labels)
{{- end -}}

{{/* The CEL match condition; the same text as webhook.TargetCondition. */}}
{{- define "guardchain.targetCondition" -}}
{{- $list := include "guardchain.celContainers" . -}}
object.spec.containers.exists(c, c.name in {{ $list }}) || (has(object.spec.initContainers) && object.spec.initContainers.exists(c, c.name in {{ $list }})) || (has(object.metadata.annotations) && 'guardchain.dev/containers' in object.metadata.annotations)
{{- end -}}

{{- /*
The config values the backstop's expressions read (templates/enforcement.yaml,
generated from webhook/enforcement.go), each printed as the CEL literal
webhook.goParams makes of the same config; a control-plane test renders the
chart and compares. Defaults are webhook.Default()'s, for values files of
releases that lacked a key.
*/}}
{{- define "guardchain.cel.allows" -}}
{{- $allowed := list "source" -}}
{{- if hasKey .root.Values.config "allowedOverrides" }}{{ $allowed = .root.Values.config.allowedOverrides | default list }}{{ end -}}
{{- if has .name $allowed }}yes{{ end -}}
{{- end -}}

{{/* configured, or the pod's guardchain.dev/<name> annotation (as annotation) where allowed. */}}
{{- define "guardchain.cel.override" -}}
{{- if include "guardchain.cel.allows" (dict "name" .name "root" .root) -}}
(has(object.metadata.annotations) && 'guardchain.dev/{{ .name }}' in object.metadata.annotations ? {{ .annotation }} : {{ .configured }})
{{- else -}}
{{ .configured }}
{{- end -}}
{{- end -}}

{{- define "guardchain.cel.names" -}}
{{- $containers := include "guardchain.celContainers" . -}}
{{- if include "guardchain.cel.allows" (dict "name" "containers" "root" .) -}}
(has(object.metadata.annotations) && 'guardchain.dev/containers' in object.metadata.annotations ? object.metadata.annotations['guardchain.dev/containers'].split(',').map(n, n.trim()).filter(n, n != '') : []) + {{ $containers }}
{{- else -}}
{{ $containers }}
{{- end -}}
{{- end -}}

{{- define "guardchain.cel.repoList" -}}
{{- toJson (prepend ((.Values.enforcement | default dict).extraRepositories | default list) .Values.initImage.repository) -}}
{{- end -}}

{{- define "guardchain.cel.repos" -}}
{{- $quoted := list -}}
{{- range (include "guardchain.cel.repoList" . | fromJsonArray) }}{{ $quoted = append $quoted (printf "'%s'" (replace "'" "" .)) }}{{ end -}}
[{{ join ", " $quoted }}]
{{- end -}}

{{- define "guardchain.cel.reposText" -}}
{{- replace "'" "" (join " or " (include "guardchain.cel.repoList" . | fromJsonArray)) -}}
{{- end -}}

{{- define "guardchain.cel.source" -}}
{{- include "guardchain.cel.override" (dict "root" . "name" "source" "configured" (printf "'%s'" (.Values.config.source | default "auto")) "annotation" "object.metadata.annotations['guardchain.dev/source']") -}}
{{- end -}}

{{- define "guardchain.cel.proxyHost" -}}
{{- include "guardchain.cel.override" (dict "root" . "name" "proxy-host" "configured" (printf "'%s'" ((.Values.config.proxy | default dict).host | default "10.200.0.1")) "annotation" "object.metadata.annotations['guardchain.dev/proxy-host']") -}}
{{- end -}}

{{- define "guardchain.cel.proxyPort" -}}
{{- include "guardchain.cel.override" (dict "root" . "name" "proxy-port" "configured" (printf "'%v'" ((.Values.config.proxy | default dict).port | default 3128 | int)) "annotation" "object.metadata.annotations['guardchain.dev/proxy-port']") -}}
{{- end -}}

{{- define "guardchain.cel.require" -}}
{{- $guards := list "safety-net" "http-proxy-fix" "nemotron-inference-fix" "ciao-network-guard" -}}
{{- if hasKey .Values.config "requiredGuards" }}{{ $guards = .Values.config.requiredGuards | default list }}{{ end -}}
{{- $a := "object.metadata.annotations['guardchain.dev/require']" -}}
{{- include "guardchain.cel.override" (dict "root" . "name" "require" "configured" (printf "'%s'" (join "," $guards | default "none")) "annotation" (printf "(%[1]s == 'none' || size(%[1]s.split(',').map(n, n.trim()).filter(n, n != '')) == 0 ? 'none' : %[1]s.split(',').map(n, n.trim()).filter(n, n != '').join(','))" $a)) -}}
{{- end -}}

{{- define "guardchain.cel.preloadsDir" -}}
'{{ .Values.config.preloadsDir | default "/usr/local/lib/nemoclaw/preloads" }}'
{{- end -}}

{{- define "guardchain.cel.cacheRedirects" -}}
{{- $r := .Values.config.cacheRedirects | default "all" -}}
{{- if or (eq $r "all") (eq $r "none") -}}
'{{ $r }}'
{{- else -}}
{{- $vars := list -}}
{{- range (splitList "," $r) }}{{ $vars = append $vars (trim .) }}{{ end -}}
'{{ join "," $vars }}'
{{- end -}}
{{- end -}}

{{- define "guardchain.cel.gitSSLCAInfo" -}}
'{{ .Values.config.gitSSLCAInfo | default "" }}'
{{- end -}}

{{- define "guardchain.cel.ownership" -}}
{{- $o := .Values.config.ownership | default "auto" -}}
{{- if or (eq $o "auto") (include "guardchain.cel.allows" (dict "name" "ownership" "root" .)) -}}
''
{{- else -}}
'{{ $o }}'
{{- end -}}
{{- end -}}

{{- define "guardchain.cel.writer" -}}
{{- include "guardchain.cel.override" (dict "root" . "name" "writer" "configured" (printf "'%s'" (.Values.config.writer | default "auto")) "annotation" "object.metadata.annotations['guardchain.dev/writer']") -}}
{{- end -}}

{{/* The label keys webhook.objectSelector reads, as a CEL list: its matchLabels' (sorted) and then its matchExpressions'. */}}
{{- define "guardchain.cel.selectorKeys" -}}
{{- $keys := list -}}
{{- $sel := .Values.webhook.objectSelector | default dict -}}
{{- range $k, $_ := ($sel.matchLabels | default dict) }}{{ $keys = append $keys (printf "'%s'" $k) }}{{ end -}}
{{- range ($sel.matchExpressions | default list) }}{{ $keys = append $keys (printf "'%s'" .key) }}{{ end -}}
{{- printf "[%s]" (join ", " $keys) -}}
{{- end -}}
