{{/*
Shared helpers. Every per-service resource is rendered by looping over .Values.services and
calling "comuna.serviceConfig", which merges .Values.defaults with the service's own block;
no template names a service.
*/}}

{{- define "comuna.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-wide prefix of every object name; service objects append "-<service>". */}}
{{- define "comuna.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 48 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 48 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 48 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "comuna.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "comuna.labels" -}}
helm.sh/chart: {{ include "comuna.chart" . }}
app.kubernetes.io/name: {{ include "comuna.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "comuna.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: comuna
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one service's pods. Args: dict "root" $ "name" <service>. */}}
{{- define "comuna.selectorLabels" -}}
app.kubernetes.io/name: {{ include "comuna.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/* Labels of one service's objects. Args: dict "root" $ "name" <service>. */}}
{{- define "comuna.serviceLabels" -}}
{{ include "comuna.labels" .root }}
app.kubernetes.io/component: {{ .name }}
comuna.io/service: {{ .name }}
{{- end }}

{{/* Name of one service's objects (Deployment, Service, ...). Args: dict "root" $ "name" <service>. */}}
{{- define "comuna.serviceFullname" -}}
{{- printf "%s-%s" (include "comuna.fullname" .root) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "comuna.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion | toString }}
{{- end }}

{{/* repository:tag, or repository@digest when image.digest is set (immutable deploys). */}}
{{- define "comuna.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "comuna.imageTag" .) }}
{{- end }}
{{- end }}

{{- define "comuna.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "comuna.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The migration Jobs run as pre-install hooks, before the release's ordinary objects exist, so
they get their own ServiceAccount created as an earlier hook.
*/}}
{{- define "comuna.migrationServiceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- printf "%s-migrations" (include "comuna.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret every secret env var reads from: the operator's own, or the chart-managed one. */}}
{{- define "comuna.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else }}
{{- printf "%s-secrets" (include "comuna.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
Data of the chart-managed Secret (key -> plain value), from the non-empty secrets.values.
Args: dict "root" $ "out" (dict) — "out" is filled in place.
*/}}
{{- define "comuna.managedSecretData" -}}
{{- $data := .out }}
{{- range $service, $fields := .root.Values.secrets.values }}
{{- if kindIs "map" $fields }}
{{- range $field, $value := $fields }}
{{- if $value }}
{{- $_ := set $data (include "comuna.secretKey" (list $service $field)) $value }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- with .root.Values.secrets.values.natsUrl }}
{{- $_ := set $data "nats-url" . }}
{{- end }}
{{- end }}

{{/* Key of one secret value in the Secret: "<service>-<kebab-case field>". Args: list <service> <field>. */}}
{{- define "comuna.secretKey" -}}
{{- printf "%s-%s" (index . 0) (index . 1 | kebabcase) }}
{{- end }}

{{/* Environment variable prefix of one service: COMUNA_<SERVICE>_. */}}
{{- define "comuna.envPrefix" -}}
{{- printf "COMUNA_%s_" (upper .) }}
{{- end }}

{{/*
Recursive merge of .src into .dst (a map, modified in place). Unlike sprig's merge, a key
present in .src always wins, even when its value is false, 0 or "" (so a service can turn off
something the defaults turn on). Maps merge key by key; lists and scalars replace.
*/}}
{{- define "comuna.deepMerge" -}}
{{- $dst := .dst }}
{{- range $key, $value := .src }}
{{- if and (kindIs "map" $value) (hasKey $dst $key) (kindIs "map" (index $dst $key)) }}
{{- include "comuna.deepMerge" (dict "dst" (index $dst $key) "src" $value) }}
{{- else }}
{{- $_ := set $dst $key $value }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Effective settings of one service: .Values.defaults overlaid with .Values.services.<name>.
Args: dict "root" $ "name" <service> "out" (dict) — "out" is filled in place.
*/}}
{{- define "comuna.serviceConfig" -}}
{{- $svc := index .root.Values.services .name }}
{{- include "comuna.deepMerge" (dict "dst" .out "src" (deepCopy .root.Values.defaults)) }}
{{- include "comuna.deepMerge" (dict "dst" .out "src" (deepCopy $svc)) }}
{{- end }}

{{/* "true" when the service is enabled. Args: dict "root" $ "name" <service>. */}}
{{- define "comuna.serviceEnabled" -}}
{{- $svc := index .root.Values.services .name }}
{{- if not (and (kindIs "map" $svc) (hasKey $svc "enabled") (not $svc.enabled)) }}true{{ end }}
{{- end }}

{{/*
gRPC target of a peer as seen from another service: an explicit peerTargets entry, else the
peer's in-cluster Service DNS name and gRPC port. Args: dict "root" $ "name" <caller> "peer" <peer> "cfg" <caller config>.
*/}}
{{- define "comuna.peerTarget" -}}
{{- $root := .root }}
{{- $override := get (default dict .cfg.peerTargets) .peer }}
{{- if $override }}
{{- $override }}
{{- else }}
{{- if not (hasKey $root.Values.services .peer) }}
{{- fail (printf "services.%s.peers: unknown service %q" .name .peer) }}
{{- end }}
{{- if not (include "comuna.serviceEnabled" (dict "root" $root "name" .peer)) }}
{{- fail (printf "services.%s.peers: %q is disabled in this release; set services.%s.peerTargets.%s to where it runs" .name .peer .name .peer) }}
{{- end }}
{{- $peerCfg := dict }}
{{- include "comuna.serviceConfig" (dict "root" $root "name" .peer "out" $peerCfg) }}
{{- printf "%s.%s.svc.%s:%v" (include "comuna.serviceFullname" (dict "root" $root "name" .peer)) $root.Release.Namespace $root.Values.clusterDomain ($peerCfg.grpcPort | int) }}
{{- end }}
{{- end }}

{{/* Pod-level security context shared by servers, migrations and tests. */}}
{{- define "comuna.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{- define "comuna.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext }}
{{- end }}

{{/* A secretKeyRef env entry. Args: dict "root" $ "env" <name> "key" <key> "optional" <bool>. */}}
{{- define "comuna.secretEnv" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ include "comuna.secretName" .root }}
      key: {{ .key }}
      optional: {{ .optional }}
{{- end }}

{{/*
Environment of one service's server container.
Args: dict "root" $ "name" <service> "cfg" <service config>.
*/}}
{{/*
Host header values a service's REST API answers (comma-separated): loopback (probes send
Host: localhost), its name and Service DNS names (the helm test pod, in-cluster callers), the
ingress hosts and http.allowedHosts. Args: dict "root" $ "name" <service>.
*/}}
{{- define "comuna.allowedHosts" -}}
{{- $root := .root }}
{{- $svc := include "comuna.serviceFullname" (dict "root" $root "name" .name) }}
{{- $hosts := list "localhost" "127.0.0.1" .name $svc (printf "%s.%s" $svc $root.Release.Namespace) (printf "%s.%s.svc" $svc $root.Release.Namespace) (printf "%s.%s.svc.%s" $svc $root.Release.Namespace $root.Values.clusterDomain) }}
{{- if $root.Values.ingress.enabled }}
{{- range $root.Values.ingress.hosts }}
{{- with .host }}
{{- $hosts = append $hosts . }}
{{- end }}
{{- end }}
{{- end }}
{{- range $root.Values.http.allowedHosts }}
{{- $hosts = append $hosts . }}
{{- end }}
{{- join "," (uniq $hosts) }}
{{- end }}

{{- define "comuna.serverEnv" -}}
{{- $root := .root }}
{{- $name := .name }}
{{- $cfg := .cfg }}
{{- $p := include "comuna.envPrefix" $name -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{ include "comuna.secretEnv" (dict "root" $root "env" (printf "%sDATABASE_URL" $p) "key" (include "comuna.secretKey" (list $name "databaseUrl")) "optional" false) }}
{{- if $cfg.databasePoolSize }}
- name: {{ $p }}DATABASE_POOL_SIZE
  value: {{ $cfg.databasePoolSize | int | quote }}
{{- end }}
{{- if $root.Values.nats.urlFromSecret }}
{{ include "comuna.secretEnv" (dict "root" $root "env" (printf "%sNATS_URL" $p) "key" "nats-url" "optional" false) }}
{{- else }}
- name: {{ $p }}NATS_URL
  value: {{ $root.Values.nats.url | quote }}
{{- end }}
{{- /* Each service is its own NATS user: the server lets it publish only its own subjects. */}}
{{- if eq $root.Values.nats.auth "password" }}
- name: {{ $p }}NATS_USER
  value: {{ $name | quote }}
{{ include "comuna.secretEnv" (dict "root" $root "env" (printf "%sNATS_PASSWORD" $p) "key" (include "comuna.secretKey" (list $name "natsPassword")) "optional" false) }}
{{- else if eq $root.Values.nats.auth "credentials" }}
- name: {{ $p }}NATS_CREDENTIALS_FILE
  value: /etc/comuna/nats/{{ $name }}.creds
{{- end }}
- name: {{ $p }}HTTP_HOST
  value: "0.0.0.0"
- name: {{ $p }}HTTP_PORT
  value: {{ $cfg.httpPort | int | quote }}
- name: {{ $p }}GRPC_HOST
  value: "0.0.0.0"
- name: {{ $p }}GRPC_PORT
  value: {{ $cfg.grpcPort | int | quote }}
{{- /* One process per pod: its ports are its own (a clash fails at start, never shares). */}}
- name: {{ $p }}REUSE_PORT
  value: "false"
- name: {{ $p }}METRICS_HOST
  value: "0.0.0.0"
- name: {{ $p }}METRICS_PORT
  value: {{ $cfg.metricsPort | int | quote }}
- name: {{ $p }}ALLOWED_HOSTS
  value: {{ include "comuna.allowedHosts" (dict "root" $root "name" $name) | quote }}
{{- with $root.Values.http.trustedProxies }}
- name: {{ $p }}TRUSTED_PROXIES
  value: {{ join "," . | quote }}
{{- end }}
- name: {{ $p }}MAX_HEADER_BYTES
  value: {{ $root.Values.http.maxHeaderBytes | int | quote }}
- name: {{ $p }}MAX_BODY_BYTES
  value: {{ $root.Values.http.maxBodyBytes | int | quote }}
- name: {{ $p }}MAX_IMPORT_BYTES
  value: {{ $root.Values.http.maxImportBytes | int64 | quote }}
- name: {{ $p }}OIDC_ISSUER
  value: {{ $root.Values.oidc.issuer | quote }}
- name: {{ $p }}OIDC_AUDIENCE
  value: {{ $root.Values.oidc.audience | quote }}
{{- with $root.Values.oidc.jwksUrl }}
- name: {{ $p }}OIDC_JWKS_URL
  value: {{ . | quote }}
{{- end }}
{{- with $root.Values.oidc.tokenUrl }}
- name: {{ $p }}OIDC_TOKEN_URL
  value: {{ . | quote }}
{{- end }}
{{- /* A service that calls no peer needs no client: its keys may be absent from the Secret. */}}
{{- $clientOptional := empty $cfg.peers }}
{{ include "comuna.secretEnv" (dict "root" $root "env" (printf "%sSERVICE_CLIENT_ID" $p) "key" (include "comuna.secretKey" (list $name "serviceClientId")) "optional" $clientOptional) }}
{{ include "comuna.secretEnv" (dict "root" $root "env" (printf "%sSERVICE_CLIENT_SECRET" $p) "key" (include "comuna.secretKey" (list $name "serviceClientSecret")) "optional" $clientOptional) }}
{{- /* Read by the services that resolve callers over gRPC; harmless for the others. */}}
- name: {{ $p }}ACCESS_CACHE_SECONDS
  value: {{ $cfg.accessCacheSeconds | toString | quote }}
- name: {{ $p }}ACCESS_STALE_SECONDS
  value: {{ $cfg.accessStaleSeconds | toString | quote }}
{{- with $cfg.rateLimits }}
- name: {{ $p }}RATE_LIMIT_DOCUMENT_LOOKUPS_PER_MINUTE
  value: {{ .documentLookups.perMinute | toString | quote }}
- name: {{ $p }}RATE_LIMIT_DOCUMENT_LOOKUPS_BURST
  value: {{ .documentLookups.burst | int | quote }}
- name: {{ $p }}RATE_LIMIT_TABLE_CHECK_INS_PER_MINUTE
  value: {{ .tableCheckIns.perMinute | toString | quote }}
- name: {{ $p }}RATE_LIMIT_TABLE_CHECK_INS_BURST
  value: {{ .tableCheckIns.burst | int | quote }}
- name: {{ $p }}RATE_LIMIT_MAX_CALLERS
  value: {{ .maxCallers | int | quote }}
{{- end }}
{{- range $peer := $cfg.peers }}
- name: {{ $p }}{{ upper $peer }}_GRPC_TARGET
  value: {{ include "comuna.peerTarget" (dict "root" $root "name" $name "peer" $peer "cfg" $cfg) | quote }}
{{- end }}
{{- range $cfg.secretEnv }}
{{ include "comuna.secretEnv" (dict "root" $root "env" (printf "%s%s" $p .name) "key" .key "optional" (default false .optional)) }}
{{- end }}
{{- with $cfg.ballots }}
- name: {{ $p }}BALLOT_BATCH_MAX
  value: {{ .batchMax | int | quote }}
- name: {{ $p }}BALLOT_BATCH_MIN
  value: {{ .batchMin | int | quote }}
- name: {{ $p }}BALLOT_BATCH_LINGER_SECONDS
  value: {{ .lingerSeconds | toString | quote }}
- name: {{ $p }}BALLOT_BATCH_MAX_HOLD_SECONDS
  value: {{ .maxHoldSeconds | toString | quote }}
- name: {{ $p }}BALLOT_BATCH_WRITERS
  value: {{ .writers | int | quote }}
{{- end }}
{{- with $cfg.record }}
- name: {{ $p }}RECORD_ORIGIN
  value: {{ .origin | quote }}
- name: {{ $p }}RECORD_CHECKPOINT_SECONDS
  value: {{ .checkpointSeconds | toString | quote }}
- name: {{ $p }}RECORD_WITNESS_KEYS
  value: {{ .witnessKeys | default list | toJson | quote }}
{{- end }}
{{- with $cfg.milestonePlan }}
- name: {{ $p }}MILESTONE_PLAN
  value: {{ . | quote }}
{{- end }}
{{- with $cfg.stall }}
- name: {{ $p }}STALL_QUIET_DAYS
  value: {{ .quietDays | int | quote }}
- name: {{ $p }}STALL_CHECK_SECONDS
  value: {{ .checkSeconds | toString | quote }}
{{- end }}
{{- with $cfg.evidence }}
- name: {{ $p }}EVIDENCE_BACKEND
  value: {{ .backend | quote }}
- name: {{ $p }}EVIDENCE_MAX_BYTES
  value: {{ .maxBytes | int | quote }}
{{- if eq .backend "s3" }}
{{- if not (and .s3.endpoint .s3.bucket) }}
{{- fail (printf "services.%s.evidence.backend=s3 needs evidence.s3.endpoint and evidence.s3.bucket (and the access keys in the Secret, see its secretEnv)" $name) }}
{{- end }}
- name: {{ $p }}EVIDENCE_S3_ENDPOINT
  value: {{ .s3.endpoint | quote }}
- name: {{ $p }}EVIDENCE_S3_BUCKET
  value: {{ .s3.bucket | quote }}
- name: {{ $p }}EVIDENCE_S3_PREFIX
  value: {{ .s3.prefix | quote }}
- name: {{ $p }}EVIDENCE_S3_REGION
  value: {{ .s3.region | quote }}
{{- else }}
- name: {{ $p }}EVIDENCE_DIR
  value: /var/lib/comuna/evidence
{{- end }}
{{- end }}
{{- with $cfg.ledger }}
- name: {{ $p }}EXPIRY_SECONDS
  value: {{ .expirySeconds | toString | quote }}
{{- with .nationalTerritory }}
- name: {{ $p }}NATIONAL_TERRITORY
  value: {{ . | quote }}
{{- end }}
{{- with .sourceCommitTimeoutSeconds }}
- name: {{ $p }}SOURCE_COMMIT_TIMEOUT_SECONDS
  value: {{ . | int | quote }}
{{- end }}
{{- end }}
- name: {{ $p }}LOG_LEVEL
  value: {{ $cfg.logLevel | quote }}
{{- with $cfg.consumers }}
{{- if .maxDeliveries }}
- name: {{ $p }}CONSUMER_MAX_DELIVERIES
  value: {{ .maxDeliveries | int | quote }}
{{- end }}
{{- if .stallSeconds }}
- name: {{ $p }}CONSUMER_STALL_SECONDS
  value: {{ .stallSeconds | toString | quote }}
{{- end }}
{{- end }}
- name: {{ $p }}OTEL_EXPORTER
  value: {{ $root.Values.telemetry.exporter | quote }}
{{- if eq $root.Values.telemetry.exporter "otlp" }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ required "telemetry.otlpEndpoint is required when telemetry.exporter is otlp" $root.Values.telemetry.otlpEndpoint | quote }}
{{- with $root.Values.telemetry.otlpHeadersSecretKey }}
{{ include "comuna.secretEnv" (dict "root" $root "env" "OTEL_EXPORTER_OTLP_HEADERS" "key" . "optional" false) }}
{{- end }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ printf "k8s.namespace.name=$(POD_NAMESPACE),k8s.pod.name=$(POD_NAME),deployment.environment=%s,service.version=%s" $root.Values.telemetry.environment (include "comuna.imageTag" $root) | quote }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with $cfg.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The volume of a service's NATS credentials file (nats.auth = credentials). Args: dict "root" $ "name" <service>. */}}
{{- define "comuna.natsCredentialsVolume" -}}
{{- if eq .root.Values.nats.auth "credentials" }}
- name: nats-credentials
  secret:
    secretName: {{ include "comuna.secretName" .root }}
    defaultMode: 0400
    items:
      - key: {{ include "comuna.secretKey" (list .name "natsCredentials") }}
        path: {{ .name }}.creds
{{- end }}
{{- end }}
