{{/* Names, labels and the pieces several templates share. */}}

{{- define "tollgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tollgate.fullname" -}}
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

{{/* A name derived from the full name: tollgate.suffixed (list . "config"). */}}
{{- define "tollgate.suffixed" -}}
{{- $root := index . 0 }}
{{- printf "%s-%s" (include "tollgate.fullname" $root | trunc (int (sub 62 (len (index . 1))))  | trimSuffix "-") (index . 1) }}
{{- end }}

{{- define "tollgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tollgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tollgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tollgate.labels" -}}
helm.sh/chart: {{ include "tollgate.chart" . }}
{{ include "tollgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tollgate
{{- end }}

{{- define "tollgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tollgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tollgate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "tollgate.configMapName" -}}
{{- include "tollgate.suffixed" (list . "config") }}
{{- end }}

{{- define "tollgate.apisConfigMapName" -}}
{{- default (include "tollgate.suffixed" (list . "apis")) .Values.apiDefinitions.existingConfigMap }}
{{- end }}

{{- define "tollgate.policiesConfigMapName" -}}
{{- default (include "tollgate.suffixed" (list . "policies")) .Values.policies.existingConfigMap }}
{{- end }}

{{- define "tollgate.secretName" -}}
{{- default (include "tollgate.fullname" .) .Values.auth.existingSecret }}
{{- end }}

{{/* Paths inside the container. */}}
{{- define "tollgate.configDir" -}}/etc/tollgate/config{{- end }}
{{- define "tollgate.appPath" -}}/etc/tollgate/apps{{- end }}
{{- define "tollgate.policyPath" -}}/etc/tollgate/policies{{- end }}
{{- define "tollgate.secretDir" -}}/run/secrets/tollgate{{- end }}
{{- define "tollgate.redisCaDir" -}}/etc/tollgate/redis-ca{{- end }}

{{/* Secret keys of the chart's own Secret; existingSecretKeys for another. */}}
{{- define "tollgate.secretKey" -}}
{{- $root := index . 0 }}
{{- $which := index . 1 }}
{{- if $root.Values.auth.existingSecret }}
{{- index $root.Values.auth.existingSecretKeys $which }}
{{- else }}
{{- index (dict "adminSecret" "admin-secret" "nodeSecret" "node-secret" "redisPassword" "redis-password") $which }}
{{- end }}
{{- end }}

{{/* "true" when tollgate is given a Redis password file. */}}
{{- define "tollgate.redisPasswordEnabled" -}}
{{- if .Values.auth.existingSecret }}
{{- if .Values.auth.existingSecretKeys.redisPassword }}true{{ end }}
{{- else if .Values.redis.password }}true
{{- end }}
{{- end }}

{{/* redis.url, built from redis.mode (or redis.url as given). */}}
{{- define "tollgate.redisUrl" -}}
{{- $r := .Values.redis }}
{{- if $r.url }}
{{- $r.url }}
{{- else }}
{{- $scheme := ternary "rediss" "redis" $r.tls.enabled }}
{{- $user := "" }}
{{- if $r.username }}{{ $user = printf "%s@" $r.username }}{{ end }}
{{- if eq $r.mode "standalone" }}
{{- printf "%s://%s%s:%d/%d" $scheme $user $r.standalone.host (int $r.standalone.port) (int $r.standalone.db) }}
{{- else if eq $r.mode "sentinel" }}
{{- $first := first $r.sentinel.nodes }}
{{- $query := printf "sentinelServiceName=%s" $r.sentinel.masterName }}
{{- range rest $r.sentinel.nodes }}{{ $query = printf "%s&node=%s" $query . }}{{ end }}
{{- printf "%s-sentinel://%s%s/%d?%s" $scheme $user $first (int $r.sentinel.db) $query }}
{{- else if eq $r.mode "cluster" }}
{{- $first := first $r.cluster.nodes }}
{{- $nodes := list }}
{{- range rest $r.cluster.nodes }}{{ $nodes = append $nodes (printf "node=%s" .) }}{{ end }}
{{- printf "%s-cluster://%s%s" $scheme $user $first }}{{ if $nodes }}?{{ join "&" $nodes }}{{ end }}
{{- else }}
{{- fail (printf "redis.mode must be standalone, sentinel or cluster, not %q" $r.mode) }}
{{- end }}
{{- end }}
{{- end }}

{{/* One TOML value: a string, a whole number or a boolean. */}}
{{- define "tollgate.tomlValue" -}}
{{- $key := index . 0 }}
{{- $v := index . 1 }}
{{- if kindIs "bool" $v }}
{{- $v }}
{{- else if kindIs "string" $v }}
{{- include "tollgate.tomlString" $v }}
{{- else if or (kindIs "float64" $v) (kindIs "int" $v) (kindIs "int64" $v) }}
{{- if ne (float64 $v) (floor $v) }}
{{- fail (printf "config.%s: must be a whole number, not %v" $key $v) }}
{{- end }}
{{- int64 $v }}
{{- else }}
{{- fail (printf "config.%s: must be a string, a whole number or a boolean" $key) }}
{{- end }}
{{- end }}

{{/*
A TOML basic string. JSON's escapes are TOML's too; Go's JSON also escapes
&, < and > (as \u0026, \u003c, \u003e), which TOML reads back fine but
people read badly: they are written plainly again where the backslash is
not itself escaped.
*/}}
{{- define "tollgate.tomlString" -}}
{{- $s := toJson . }}
{{- range list (list "0026" "&") (list "003c" "<") (list "003e" ">") }}
{{- $s = regexReplaceAll (printf "(^|[^\\\\])((?:\\\\\\\\)*)\\\\u%s" (index . 0)) $s (printf "${1}${2}%s" (index . 1)) }}
{{- end }}
{{- $s }}
{{- end }}

{{/* Lines `key = value` for the scalar entries of a map; nulls left out. */}}
{{- define "tollgate.tomlEntries" -}}
{{- $prefix := index . 0 }}
{{- range $key, $value := index . 1 }}
{{- if and (not (kindIs "invalid" $value)) (not (kindIs "map" $value)) }}
{{ $key }} = {{ include "tollgate.tomlValue" (list (printf "%s%s" $prefix $key) $value) }}
{{- end }}
{{- end }}
{{- end }}

{{/* A PodDisruptionBudget bound: a whole number or "N%". */}}
{{- define "tollgate.intOrPercent" -}}
{{- if kindIs "string" . }}{{ quote . }}{{ else }}{{ int . }}{{ end }}
{{- end }}

{{/* Checks across values that the schema cannot express. */}}
{{- define "tollgate.checks" -}}
{{- $drain := 10 }}
{{- if not (kindIs "invalid" .Values.config.drain_timeout_seconds) }}
{{- $drain = int .Values.config.drain_timeout_seconds }}
{{- end }}
{{- $sleep := int .Values.lifecycle.preStopSleepSeconds }}
{{- $grace := int .Values.terminationGracePeriodSeconds }}
{{- if le $grace (add $sleep $drain) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be greater than lifecycle.preStopSleepSeconds (%d) + config.drain_timeout_seconds (%d), or pods are killed before they finish draining" $grace $sleep $drain) }}
{{- end }}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) }}
{{- fail (printf "autoscaling.maxReplicas (%d) must be at least autoscaling.minReplicas (%d)" (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) }}
{{- end }}
{{- $url := include "tollgate.redisUrl" . }}
{{- if not (regexMatch "^(?i)rediss?(-cluster|-sentinel)?://" $url) }}
{{- fail (printf "redis.url must start with redis://, rediss://, redis[s]-cluster:// or redis[s]-sentinel://") }}
{{- end }}
{{- if regexMatch "^[^/]*//[^/?#@]*:[^/?#@]*@" $url }}
{{- fail "redis.url must not contain a password (the URL is stored in a ConfigMap): set redis.password, or the redis password key of auth.existingSecret" }}
{{- end }}
{{- if and (regexMatch "(?i)-sentinel://" $url) (not (contains "sentinelServiceName=" $url)) }}
{{- fail "redis.url: a redis-sentinel:// URL needs ?sentinelServiceName=NAME" }}
{{- end }}
{{- if and .Values.redis.tls.caSecret.name (not (regexMatch "^(?i)rediss" $url)) }}
{{- fail "redis.tls.caSecret.name is set but Redis is not reached over TLS: set redis.tls.enabled=true (or a rediss:// redis.url)" }}
{{- end }}
{{- end }}
