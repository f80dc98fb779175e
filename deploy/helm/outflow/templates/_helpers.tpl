{{/* At most 40, so that "<fullname>-notifications-consumer" still fits a Service name (a DNS label, 63). */}}
{{- define "outflow.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "outflow.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/part-of: outflow
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* Pod selector of one service: ctx is (dict "root" $ "name" NAME). */}}
{{- define "outflow.selector" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "outflow.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The Secret every secretKeyRef names. */}}
{{- define "outflow.secretName" -}}
{{- if .Values.secrets.values -}}
{{- printf "%s-secrets" (include "outflow.fullname" .) -}}
{{- else -}}
{{- required "secrets.existingSecret (or secrets.values) must be set: the services take every password from a Secret" .Values.secrets.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* The keys infra/dev.env names, as a dict key -> development value. */}}
{{- define "outflow.devEnv" -}}
{{- $out := dict -}}
{{- range (.Files.Get "files/dev.env" | splitList "\n") -}}
{{- $line := trim . -}}
{{- if and $line (not (hasPrefix "#" $line)) (contains "=" $line) -}}
{{- $parts := splitn "=" 2 $line -}}
{{- $_ := set $out $parts._0 $parts._1 -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{- define "outflow.connectUrl" -}}
{{- .Values.connect.url | default (printf "http://%s-connect-api:8083" .Values.connect.name) -}}
{{- end -}}

{{/* An env entry from the Secret: ctx is (dict "root" $ "name" VAR "key" KEY). */}}
{{- define "outflow.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "outflow.secretName" .root }}
      key: {{ .key }}
{{- end -}}

{{/*
A service's environment: ctx is (dict "root" $ "name" NAME "svc" SETTINGS).
Secrets come first: OUTFLOW_DATABASE__URL takes its password through
Kubernetes' $(VAR) expansion, so that the services' production check still
sees the whole URL.
*/}}
{{- define "outflow.env" -}}
{{- $root := .root -}}
{{- $svc := .svc -}}
{{- if $svc.database }}
{{ include "outflow.secretEnv" (dict "root" $root "name" $svc.database.passwordKey "key" $svc.database.passwordKey) }}
{{- end }}
{{- if $svc.jwt }}
{{ include "outflow.secretEnv" (dict "root" $root "name" "OUTFLOW_JWT_SECRET" "key" "OUTFLOW_JWT_SECRET") }}
{{- end }}
{{- if $svc.provider }}
{{ include "outflow.secretEnv" (dict "root" $root "name" "OUTFLOW_PROVIDER_SERVER_KEY" "key" "OUTFLOW_PROVIDER_SERVER_KEY") }}
{{- end }}
{{- if $svc.carrier }}
{{ include "outflow.secretEnv" (dict "root" $root "name" "OUTFLOW_CARRIER_KEY" "key" "OUTFLOW_CARRIER_KEY") }}
{{- end }}
{{- if $svc.registryLogin }}
{{- $login := required (printf "registry.logins.%s is not defined" $svc.registryLogin) (get $root.Values.registry.logins $svc.registryLogin) }}
{{ include "outflow.secretEnv" (dict "root" $root "name" "OUTFLOW_REGISTRY_PASSWORD" "key" $login.passwordKey) }}
{{- end }}
{{- if $svc.kafkaLogin }}
{{ include "outflow.secretEnv" (dict "root" $root "name" "OUTFLOW_KAFKA_PASSWORD" "key" $svc.kafkaLogin.passwordKey) }}
{{- end }}
{{- if $svc.mongo }}
{{ include "outflow.secretEnv" (dict "root" $root "name" "OUTFLOW_MONGO_USER" "key" "OUTFLOW_MONGO_USER") }}
{{ include "outflow.secretEnv" (dict "root" $root "name" "OUTFLOW_MONGO_PASSWORD" "key" "OUTFLOW_MONGO_PASSWORD") }}
{{- end }}
{{- range $var, $key := $svc.secretEnv }}
{{ include "outflow.secretEnv" (dict "root" $root "name" $var "key" $key) }}
{{- end }}
- name: OUTFLOW_ENV
  value: {{ $root.Values.environment | quote }}
- name: OUTFLOW_LOG_FORMAT
  value: {{ $root.Values.log.format | quote }}
- name: RUST_LOG
  value: {{ $root.Values.log.level | quote }}
{{- if $root.Values.tracing.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $root.Values.tracing.otlpEndpoint | quote }}
{{- end }}
{{- /* The services bind 127.0.0.1 unless told otherwise; probes come from the node. */}}
- name: OUTFLOW_HTTP__HOST
  value: "0.0.0.0"
- name: OUTFLOW_HTTP__PORT
  value: {{ $svc.port | quote }}
{{- if $svc.database }}
{{- $pg := $root.Values.postgres }}
- name: OUTFLOW_DATABASE__URL
  value: {{ printf "postgres://%s:$(%s)@%s:%v/%s%s" $svc.database.user $svc.database.passwordKey $pg.host $pg.port $svc.database.name (ternary (printf "?%s" $pg.urlOptions) "" (ne $pg.urlOptions "")) | quote }}
{{- end }}
{{- if $svc.jwt }}
{{- with $root.Values.jwt.issuer }}
- name: OUTFLOW_JWT__ISSUER
  value: {{ . | quote }}
{{- end }}
{{- with $root.Values.jwt.audience }}
- name: OUTFLOW_JWT__AUDIENCE
  value: {{ . | quote }}
{{- end }}
{{- with $root.Values.jwt.jwksUrl }}
- name: OUTFLOW_JWT__JWKS_URL
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- if and $svc.provider $root.Values.provider.url }}
- name: OUTFLOW_PROVIDER_URL
  value: {{ $root.Values.provider.url | quote }}
{{- end }}
{{- if and $svc.carrier $root.Values.carrier.url }}
- name: OUTFLOW_CARRIER_URL
  value: {{ $root.Values.carrier.url | quote }}
{{- end }}
{{- if $svc.registryLogin }}
- name: OUTFLOW_REGISTRY_URL
  value: {{ $root.Values.registry.url | quote }}
- name: OUTFLOW_REGISTRY_USER
  value: {{ (get $root.Values.registry.logins $svc.registryLogin).user | quote }}
{{- end }}
{{- if $svc.kafkaLogin }}
- name: OUTFLOW_KAFKA_BROKERS
  value: {{ $root.Values.kafka.bootstrapServers | quote }}
- name: OUTFLOW_KAFKA_USER
  value: {{ $svc.kafkaLogin.user | quote }}
{{- end }}
{{- if $svc.mongo }}
- name: OUTFLOW_MONGO_URL
  value: {{ $root.Values.mongo.url | quote }}
- name: OUTFLOW_VIEWS_DATABASE
  value: {{ $root.Values.mongo.database | quote }}
{{- end }}
{{- range $var, $value := $svc.env }}
- name: {{ $var }}
  value: {{ tpl (toString $value) $root | quote }}
{{- end }}
{{- end -}}
