{{/* The release's base name: the release name, with the chart name unless it has it. */}}
{{- define "switchyard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "switchyard.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "switchyard.labels" -}}
{{ include "switchyard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "switchyard.tlsSecret" -}}
{{- default (printf "%s-tls" (include "switchyard.fullname" .)) .Values.tls.secretName -}}
{{- end -}}

{{/* The etcd client endpoints the routers use, comma-separated; empty for none. */}}
{{- define "switchyard.etcdEndpoints" -}}
{{- if .Values.etcd.statefulset.enabled -}}
{{- $name := printf "%s-etcd" (include "switchyard.fullname" .) -}}
{{- range $i := until (int .Values.etcd.statefulset.replicas) -}}
{{- if $i }},{{ end }}{{ printf "%s-%d.%s:2379" $name $i $name }}
{{- end -}}
{{- else -}}
{{- join "," .Values.etcd.endpoints -}}
{{- end -}}
{{- end -}}

{{/* Security settings every container gets. */}}
{{- define "switchyard.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end -}}

{{- define "switchyard.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}
