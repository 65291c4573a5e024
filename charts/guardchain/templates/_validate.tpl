{{/*
The checks of webhook.Config.Validate that values.schema.json cannot express,
and a webhook.namespaces entry the registration would never select. Each
failure names the value, so a bad upgrade stops at render time instead of
crash-looping new webhook pods.
*/}}
{{- define "guardchain.validate" -}}
{{- $res := .Values.config.resources | default dict -}}
{{- $limits := $res.limits | default dict -}}
{{- range $name, $req := $res.requests | default dict -}}
{{- if hasKey $limits $name -}}
{{- $lim := index $limits $name -}}
{{- if gt (include "guardchain.quantityValue" $req | float64) (include "guardchain.quantityValue" $lim | float64) -}}
{{- fail (printf "config.resources.requests.%s (%v) exceeds config.resources.limits.%s (%v); the webhook refuses such a config" $name $req $name $lim) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- with .Values.config.namespaceOptOutLabel -}}
{{- $prefix := splitList "/" . | initial | join "/" -}}
{{- if gt (len $prefix) 253 -}}
{{- fail (printf "config.namespaceOptOutLabel %q: the prefix before / is longer than 253 characters" .) -}}
{{- end -}}
{{- end -}}
{{- with .Values.config.preloadsDir -}}
{{- if or (ne (clean .) .) (eq . "/") -}}
{{- fail (printf "config.preloadsDir %q: want a clean absolute path (no ., .. or trailing /); the webhook refuses it" .) -}}
{{- end -}}
{{- end -}}
{{- if has "slack-token-rewriter" (.Values.config.requiredGuards | default list) -}}
{{- fail "config.requiredGuards lists slack-token-rewriter, which is retired: OpenShell resolves the xoxb-/xapp-OPENSHELL-RESOLVE-ENV- placeholders itself, and NemoClaw fails a sandbox whose NODE_OPTIONS names it. Remove it; the webhook refuses it" -}}
{{- end -}}
{{- range .Values.webhook.namespaces -}}
{{- if eq . $.Release.Namespace -}}
{{- fail (printf "webhook.namespaces lists %s, the release namespace: guardchain never mutates pods in its own namespace (it must not block its own recovery), so that entry selects nothing. Remove it, or install the chart in another namespace" .) -}}
{{- end -}}
{{- if eq . "kube-system" -}}
{{- fail "webhook.namespaces lists kube-system: guardchain never mutates pods there (it must not block the cluster's recovery), so that entry selects nothing. Remove it" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
A resource quantity ("100m", "16Mi", "1e3", 0.5) as a float in base units, for
comparisons: Helm has no quantity type. The schema has vetted the form.
*/}}
{{- define "guardchain.quantityValue" -}}
{{- $q := toString . -}}
{{- $num := regexFind "^[+]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?" $q -}}
{{- $factors := dict "" 1.0 "n" 1e-9 "u" 1e-6 "m" 1e-3 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "E" 1e18 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 "Ei" 1152921504606846976.0 -}}
{{- mulf (trimPrefix "+" $num | float64) (get $factors (trimPrefix $num $q)) -}}
{{- end -}}
