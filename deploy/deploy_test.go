package deploy

import (
	"bytes"
	"context"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/switchyard-ai/switchyard/internal/app"
	"github.com/switchyard-ai/switchyard/internal/config"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

// manifestSet is one way to deploy: a kustomization, or the chart with some values, plus
// the Gateway API examples where they belong with it.
type manifestSet struct {
	name      string
	kustomize []string       // kustomization directories, rendered and concatenated
	helm      map[string]any // chart values over values.yaml, when the set is the chart
	release   string
	// What the set must contain. discovery: a pool with Kubernetes discovery.
	etcd, tls, monitor, gateway, discovery bool
}

var sets = []manifestSet{
	{name: "kustomize-base", kustomize: []string{"kustomize/base"}},
	{name: "kustomize-etcd", kustomize: []string{"kustomize/overlays/etcd"}, etcd: true},
	{name: "kustomize-tls-gateway", kustomize: []string{"kustomize/overlays/tls", "gateway-api"}, tls: true, gateway: true},
	{name: "kustomize-monitoring", kustomize: []string{"kustomize/overlays/monitoring"}, monitor: true},
	{name: "kustomize-discovery", kustomize: []string{"kustomize/overlays/discovery"}, discovery: true},
	{name: "helm-default", helm: map[string]any{}, release: "switchyard"},
	{name: "helm-full", release: "prod", etcd: true, tls: true, monitor: true, helm: map[string]any{
		"replicaCount":   4,
		"ports":          map[string]any{"http": 8443, "admin": 9091},
		"tls":            map[string]any{"enabled": true, "cert": testCertPEM, "key": "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n"},
		"etcd":           map[string]any{"statefulset": map[string]any{"enabled": true, "replicas": 5}},
		"serviceMonitor": map[string]any{"enabled": true, "labels": map[string]any{"release": "prometheus"}},
		"config": map[string]any{"routing": map[string]any{"session_header": "x-session-id"},
			"server": map[string]any{"drain_timeout": "20s", "max_body_bytes": 1048576}},
	}},
	{name: "helm-external-etcd", release: "switchyard", etcd: true, helm: map[string]any{
		"replicaCount": 2,
		"etcd":         map[string]any{"endpoints": []string{"etcd-0.etcd.infra:2379", "etcd-1.etcd.infra:2379", "etcd-2.etcd.infra:2379"}},
	}},
	{name: "helm-discovery", release: "switchyard", discovery: true, helm: map[string]any{
		"discovery": map[string]any{"kubernetes": map[string]any{"enabled": true, "namespace": "models"}},
		"config": map[string]any{"pools": []any{map[string]any{"name": "llama-8b", "metrics": "vllm",
			"discovery": map[string]any{"kubernetes": map[string]any{"namespace": "models", "service": "vllm-llama-8b", "port": "http"}}}}},
	}},
}

// testCertPEM is a syntactically valid PEM block for the chart's Secret; nothing verifies it.
const testCertPEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIBATAKBggqhkjOPQQDAjAA\n-----END CERTIFICATE-----\n"

// render renders a set and compares it with its golden file.
func (s manifestSet) render(t *testing.T) []byte {
	t.Helper()
	var out []byte
	if s.helm != nil {
		var err error
		if out, err = renderChart("helm/switchyard", s.release, setNamespace, s.helm); err != nil {
			t.Fatal(err)
		}
	}
	for _, dir := range s.kustomize {
		objs, err := kustomize(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			out = append(append(out, "---\n"...), mustYAML(t, o)...)
		}
	}
	golden := filepath.Join("testdata", s.name+".yaml")
	if *update {
		if err := os.WriteFile(golden, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./deploy -update)", err)
	}
	if !bytes.Equal(out, want) {
		t.Errorf("rendered output differs from %s; if the change is intended, run go test ./deploy -update\n%s", golden, firstDiff(want, out))
	}
	return out
}

func mustYAML(t *testing.T, v any) []byte {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func firstDiff(want, got []byte) string {
	w, g := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	for i := range max(len(w), len(g)) {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n  want %q\n  got  %q", i+1, wl, gl)
		}
	}
	return ""
}

// TestManifests renders every manifest set, decodes each object strictly into its type, and
// checks the set's invariants: the router's configuration passes its own validation and
// agrees with the container's ports, probes, volumes and flags; every workload is locked
// down; selectors, PodDisruptionBudgets, the ServiceMonitor, etcd, the RBAC for Kubernetes
// discovery and the Gateway API objects point at what exists.
func TestManifests(t *testing.T) {
	for _, s := range sets {
		t.Run(s.name, func(t *testing.T) {
			b, err := decodeAll(s.render(t))
			if err != nil {
				t.Fatal(err)
			}
			routers := b.routers()
			if len(routers) != 1 {
				t.Fatalf("%d router Deployments, want 1", len(routers))
			}
			d := routers[0]
			cfg, flags := checkRouter(t, b, d)
			checkWorkloads(t, b)
			checkServices(t, b, d, cfg)
			checkTLS(t, b, d, cfg, s.tls)
			checkEtcd(t, b, flags["etcd"], s.etcd)
			checkMonitoring(t, b, s.monitor)
			checkDiscovery(t, b, d, cfg, s.discovery)
			checkGateway(t, b, s.gateway)
			checkProbesServed(t, d, cfg)
		})
	}
}

// checkRouter validates the router's configuration as `switchyard serve` would build it from
// the container's flags, and its ports and probes against it. It returns the configuration
// and the flags.
func checkRouter(t *testing.T, b *bundle, d *appsv1.Deployment) (*config.Config, map[string]string) {
	t.Helper()
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		t.Errorf("router replicas %v: want several", d.Spec.Replicas)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Fatalf("args %q: want serve first", c.Args)
	}
	flags := map[string]string{}
	for _, a := range c.Args[1:] {
		k, v, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !ok || !strings.HasPrefix(a, "--") || (k != "config" && k != "etcd") {
			t.Errorf("argument %q: want --config=FILE or --etcd=LIST", a)
		}
		flags[k] = v
	}
	data := configFile(t, b, d, flags["config"])
	cfg, err := config.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if flags["etcd"] != "" {
		cfg.SetEtcd(flags["etcd"])
	}
	if err := cfg.Finish(data); err != nil {
		t.Fatalf("the ConfigMap's configuration does not validate: %v", err)
	}
	ports := containerPorts(c)
	for _, l := range []struct{ name, addr string }{{"http", cfg.Listen}, {"admin", cfg.AdminListen}} {
		host, port, _ := net.SplitHostPort(l.addr)
		if host != "0.0.0.0" && host != "" {
			t.Errorf("%s listens on %s: other pods cannot reach it", l.name, l.addr)
		}
		if strconv.Itoa(int(ports[l.name])) != port {
			t.Errorf("container port %s is %d but the configuration listens on %s", l.name, ports[l.name], l.addr)
		}
	}
	for _, p := range []struct {
		what  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("no %s probe over HTTP", p.what)
			continue
		}
		if p.probe.HTTPGet.Path != p.path || portNumber(p.probe.HTTPGet.Port, ports) != ports["admin"] {
			t.Errorf("%s probe %s on port %s: want %s on the admin port", p.what, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port.String(), p.path)
		}
	}
	grace := int64(30)
	if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = *g
	}
	if drain := int64(cfg.Server.DrainTimeout.D().Seconds()); grace <= drain {
		t.Errorf("terminationGracePeriodSeconds %d leaves no room for drain_timeout %ds", grace, drain)
	}
	if len(b.ServiceAccounts) > 0 && !slices.ContainsFunc(b.ServiceAccounts, func(sa *corev1.ServiceAccount) bool {
		return sa.Name == d.Spec.Template.Spec.ServiceAccountName
	}) {
		t.Errorf("service account %q is not in the set", d.Spec.Template.Spec.ServiceAccountName)
	}
	return cfg, flags
}

// configFile finds the file the --config flag names in the ConfigMap mounted at its directory.
func configFile(t *testing.T, b *bundle, d *appsv1.Deployment, file string) []byte {
	t.Helper()
	if file == "" {
		t.Fatal("no --config flag")
	}
	vol := mountedVolume(d, path.Dir(file))
	if vol == nil || vol.ConfigMap == nil {
		t.Fatalf("--config %s: no ConfigMap is mounted at %s", file, path.Dir(file))
	}
	for _, cm := range b.ConfigMaps {
		if cm.Name == vol.ConfigMap.Name {
			data, ok := cm.Data[path.Base(file)]
			if !ok {
				t.Fatalf("ConfigMap %s has no key %s", cm.Name, path.Base(file))
			}
			return []byte(data)
		}
	}
	t.Fatalf("ConfigMap %s is not in the set", vol.ConfigMap.Name)
	return nil
}

// mountedVolume is the volume mounted at dir in the router container.
func mountedVolume(d *appsv1.Deployment, dir string) *corev1.Volume {
	for _, m := range d.Spec.Template.Spec.Containers[0].VolumeMounts {
		if m.MountPath != dir {
			continue
		}
		for i, v := range d.Spec.Template.Spec.Volumes {
			if v.Name == m.Name {
				return &d.Spec.Template.Spec.Volumes[i]
			}
		}
	}
	return nil
}

func containerPorts(c corev1.Container) map[string]int32 {
	m := map[string]int32{}
	for _, p := range c.Ports {
		m[p.Name] = p.ContainerPort
	}
	return m
}

// portNumber resolves a named or numbered port against a container's ports.
func portNumber(p intstr.IntOrString, ports map[string]int32) int32 {
	if p.Type == intstr.String {
		return ports[p.StrVal]
	}
	return p.IntVal
}

// checkWorkloads holds every Deployment and StatefulSet to the same rules: selectors that
// select the pod template, a locked-down security context, and resource requests.
func checkWorkloads(t *testing.T, b *bundle) {
	t.Helper()
	type workload struct {
		name     string
		selector map[string]string
		spec     corev1.PodTemplateSpec
		router   bool
	}
	var ws []workload
	for _, d := range b.Deployments {
		ws = append(ws, workload{"Deployment " + d.Name, d.Spec.Selector.MatchLabels, d.Spec.Template, slices.Contains(b.routers(), d)})
	}
	for _, s := range b.StatefulSets {
		ws = append(ws, workload{"StatefulSet " + s.Name, s.Spec.Selector.MatchLabels, s.Spec.Template, false})
	}
	for _, w := range ws {
		if len(w.selector) == 0 || !selects(w.selector, w.spec.Labels) {
			t.Errorf("%s: selector %v does not select its pods %v", w.name, w.selector, w.spec.Labels)
		}
		pod := w.spec.Spec.SecurityContext
		if pod == nil || pod.SeccompProfile == nil || pod.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: pod seccomp profile is not RuntimeDefault", w.name)
		}
		if pod == nil || pod.RunAsUser == nil || *pod.RunAsUser == 0 {
			t.Errorf("%s: pods do not run as a non-root user id", w.name)
		}
		// The router's token follows its configuration (checkDiscovery); nothing else calls
		// the Kubernetes API.
		if !w.router && (w.spec.Spec.AutomountServiceAccountToken == nil || *w.spec.Spec.AutomountServiceAccountToken) {
			t.Errorf("%s: the service account token is mounted", w.name)
		}
		for _, c := range w.spec.Spec.Containers {
			// A mount inside another volume's mount needs a directory the kubelet cannot
			// create in a read-only ConfigMap or Secret volume.
			for _, m := range c.VolumeMounts {
				for _, o := range c.VolumeMounts {
					if m.Name != o.Name && strings.HasPrefix(m.MountPath, strings.TrimSuffix(o.MountPath, "/")+"/") {
						t.Errorf("%s container %s: %s is mounted inside %s", w.name, c.Name, m.MountPath, o.MountPath)
					}
				}
			}
			sc := c.SecurityContext
			if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
				sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 ||
				(sc.Privileged != nil && *sc.Privileged) {
				t.Errorf("%s container %s: want non-root, read-only root, no privilege escalation, all capabilities dropped", w.name, c.Name)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s container %s: want cpu and memory requests and a memory limit", w.name, c.Name)
			}
		}
	}
	for _, p := range b.PDBs {
		if !slices.ContainsFunc(ws, func(w workload) bool { return selects(p.Spec.Selector.MatchLabels, w.spec.Labels) }) {
			t.Errorf("PodDisruptionBudget %s selects no workload's pods", p.Name)
		}
		if p.Spec.MaxUnavailable == nil && p.Spec.MinAvailable == nil {
			t.Errorf("PodDisruptionBudget %s sets no budget", p.Name)
		}
	}
}

// selects reports whether a label selector matches labels.
func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}

// checkServices finds the data-plane Service: one port, onto the container's http port,
// with an appProtocol; and a Service for the admin port.
func checkServices(t *testing.T, b *bundle, d *appsv1.Deployment, cfg *config.Config) {
	t.Helper()
	ports := containerPorts(d.Spec.Template.Spec.Containers[0])
	var data, admin int
	for _, s := range b.Services {
		if !selects(s.Spec.Selector, d.Spec.Template.Labels) {
			continue
		}
		for _, p := range s.Spec.Ports {
			switch portNumber(p.TargetPort, ports) {
			case ports["http"]:
				data++
				if len(s.Spec.Ports) != 1 {
					t.Errorf("Service %s: the data plane's Service has %d ports, want 1", s.Name, len(s.Spec.Ports))
				}
				if cfg.Server.TLS == nil && (p.AppProtocol == nil || *p.AppProtocol != "kubernetes.io/h2c") {
					t.Errorf("Service %s: cleartext data plane without appProtocol kubernetes.io/h2c", s.Name)
				}
			case ports["admin"]:
				admin++
			default:
				t.Errorf("Service %s port %s: targets no router port", s.Name, p.Name)
			}
		}
	}
	if data != 1 || admin != 1 {
		t.Errorf("%d data-plane and %d admin Service ports select the router, want one each", data, admin)
	}
}

// checkTLS checks data-plane TLS: the key pair comes from a kubernetes.io/tls Secret mounted
// where the configuration looks, and the Service does not claim cleartext HTTP/2.
func checkTLS(t *testing.T, b *bundle, d *appsv1.Deployment, cfg *config.Config, want bool) {
	t.Helper()
	tls := cfg.Server.TLS
	if (tls != nil) != want {
		t.Fatalf("server.tls set: %v, want %v", tls != nil, want)
	}
	if tls == nil {
		return
	}
	for _, f := range []struct{ file, key string }{{tls.CertFile, corev1.TLSCertKey}, {tls.KeyFile, corev1.TLSPrivateKeyKey}} {
		vol := mountedVolume(d, path.Dir(f.file))
		if vol == nil || vol.Secret == nil || path.Base(f.file) != f.key {
			t.Errorf("%s: want key %s of a Secret mounted at %s", f.file, f.key, path.Dir(f.file))
			continue
		}
		for _, s := range b.Secrets {
			if s.Name != vol.Secret.SecretName {
				continue
			}
			if s.Type != corev1.SecretTypeTLS {
				t.Errorf("Secret %s has type %s, want kubernetes.io/tls", s.Name, s.Type)
			}
			if blk, _ := pem.Decode(s.Data[f.key]); blk == nil {
				t.Errorf("Secret %s: %s is not PEM", s.Name, f.key)
			}
		}
	}
}

var etcdMember = regexp.MustCompile(`^([a-z0-9-]+)-(\d+)\.([a-z0-9-]+):(\d+)$`)

// checkEtcd checks that the --etcd endpoints are exactly the members of the etcd StatefulSet
// in the set, when there is one, through its headless Service's client port.
func checkEtcd(t *testing.T, b *bundle, endpoints string, want bool) {
	t.Helper()
	if (endpoints != "") != want {
		t.Fatalf("--etcd %q, want etcd: %v", endpoints, want)
	}
	if len(b.StatefulSets) == 0 {
		return
	}
	sts := b.StatefulSets[0]
	svc := b.service(sts.Spec.ServiceName)
	if svc == nil || svc.Spec.ClusterIP != corev1.ClusterIPNone || !selects(svc.Spec.Selector, sts.Spec.Template.Labels) {
		t.Fatalf("StatefulSet %s: serviceName %s is not a headless Service selecting its pods", sts.Name, sts.Spec.ServiceName)
	}
	var client int32
	for _, p := range svc.Spec.Ports {
		if p.Name == "client" {
			client = p.Port
		}
	}
	replicas := int(*sts.Spec.Replicas)
	eps := strings.Split(endpoints, ",")
	if len(eps) != replicas {
		t.Errorf("--etcd names %d members, the StatefulSet has %d", len(eps), replicas)
	}
	for i, e := range eps {
		m := etcdMember.FindStringSubmatch(e)
		if m == nil || m[1] != sts.Name || m[2] != strconv.Itoa(i) || m[3] != svc.Name || m[4] != strconv.Itoa(int(client)) {
			t.Errorf("--etcd member %q: want %s-%d.%s:%d", e, sts.Name, i, svc.Name, client)
		}
	}
	var initial string
	for _, a := range sts.Spec.Template.Spec.Containers[0].Command {
		if v, ok := strings.CutPrefix(a, "--initial-cluster="); ok {
			initial = v
		}
	}
	if n := len(strings.Split(initial, ",")); n != replicas {
		t.Errorf("--initial-cluster names %d members, the StatefulSet has %d", n, replicas)
	}
	for _, p := range b.PDBs {
		if selects(p.Spec.Selector.MatchLabels, sts.Spec.Template.Labels) &&
			(p.Spec.MinAvailable == nil || p.Spec.MinAvailable.IntValue() <= replicas/2) {
			t.Errorf("PodDisruptionBudget %s lets etcd lose quorum", p.Name)
		}
	}
}

// checkMonitoring checks that the ServiceMonitor scrapes a port of a Service it selects.
func checkMonitoring(t *testing.T, b *bundle, want bool) {
	t.Helper()
	if (len(b.ServiceMonitors) > 0) != want {
		t.Fatalf("%d ServiceMonitors, want one: %v", len(b.ServiceMonitors), want)
	}
	for _, sm := range b.ServiceMonitors {
		for _, ep := range sm.Spec.Endpoints {
			found := false
			for _, s := range b.Services {
				if selects(sm.Spec.Selector.MatchLabels, s.Labels) &&
					slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) {
					found = true
				}
			}
			if !found || ep.Path != "/metrics" {
				t.Errorf("ServiceMonitor %s: endpoint %s%s is not /metrics on a selected Service's port", sm.Name, ep.Port, ep.Path)
			}
		}
	}
}

// checkDiscovery checks the router's access to the Kubernetes API, which only Kubernetes
// discovery uses. The router's pods mount the service account token exactly when a pool
// discovers its endpoints from EndpointSlices. Every RoleBinding binds a Role of the set, in
// its own namespace, to the router's ServiceAccount; every Role grants reading EndpointSlices
// in discovery.k8s.io (list and watch, get at most besides) and nothing else; and each
// namespace a pool watches has such a binding.
func checkDiscovery(t *testing.T, b *bundle, d *appsv1.Deployment, cfg *config.Config, want bool) {
	t.Helper()
	watched := map[string]string{} // namespace the router watches EndpointSlices in -> a pool
	for _, p := range cfg.Pools {
		if p.Discovery != nil && p.Discovery.Kubernetes != nil {
			watched[inNamespace(p.Discovery.Kubernetes.Namespace)] = p.Name
		}
	}
	if (len(watched) > 0) != want {
		t.Fatalf("a pool with Kubernetes discovery: %v, want %v", len(watched) > 0, want)
	}
	pod := d.Spec.Template.Spec
	saName := pod.ServiceAccountName
	if saName == "" {
		saName = "default"
	}
	sa := b.serviceAccount(saName)
	saNamespace := setNamespace
	token := true // the API's default, for the pod and for the ServiceAccount
	switch {
	case pod.AutomountServiceAccountToken != nil:
		token = *pod.AutomountServiceAccountToken
	case sa != nil && sa.AutomountServiceAccountToken != nil:
		token = *sa.AutomountServiceAccountToken
	}
	if sa != nil {
		saNamespace = inNamespace(sa.Namespace)
		if a := sa.AutomountServiceAccountToken; a == nil || *a != want {
			got := "unset"
			if a != nil {
				got = strconv.FormatBool(*a)
			}
			t.Errorf("ServiceAccount %s: automountServiceAccountToken %s, want %v", sa.Name, got, want)
		}
	}
	if token != want {
		t.Errorf("router pods mount the service account token: %v, want %v (only Kubernetes discovery calls the API)", token, want)
	}
	if !want && len(b.Roles)+len(b.RoleBindings) > 0 {
		t.Errorf("%d Roles and %d RoleBindings without Kubernetes discovery", len(b.Roles), len(b.RoleBindings))
	}

	slicesOnly := func(r *rbacv1.Role) bool {
		var verbs []string
		for _, rule := range r.Rules {
			if !slices.Equal(rule.APIGroups, []string{"discovery.k8s.io"}) || !slices.Equal(rule.Resources, []string{"endpointslices"}) ||
				len(rule.ResourceNames) > 0 || len(rule.NonResourceURLs) > 0 ||
				slices.ContainsFunc(rule.Verbs, func(v string) bool { return v != "get" && v != "list" && v != "watch" }) {
				t.Errorf("Role %s: rule %+v grants more than reading endpointslices in discovery.k8s.io", r.Name, rule)
				return false
			}
			verbs = append(verbs, rule.Verbs...)
		}
		if !slices.Contains(verbs, "list") || !slices.Contains(verbs, "watch") {
			t.Errorf("Role %s grants %v on endpointslices: discovery needs list and watch", r.Name, verbs)
			return false
		}
		return true
	}
	readsSlices := map[*rbacv1.Role]bool{}
	for _, r := range b.Roles {
		readsSlices[r] = slicesOnly(r)
	}
	granted := map[string]bool{}
	for _, rb := range b.RoleBindings {
		ns := inNamespace(rb.Namespace)
		ref := rb.RoleRef
		role := b.role(ns, ref.Name)
		if ref.APIGroup != rbacv1.GroupName || ref.Kind != "Role" || role == nil {
			t.Errorf("RoleBinding %s/%s: roleRef %s %s is not a Role of the set in its namespace", ns, rb.Name, ref.Kind, ref.Name)
			continue
		}
		if len(rb.Subjects) != 1 {
			t.Errorf("RoleBinding %s/%s: %d subjects, want the router's ServiceAccount alone", ns, rb.Name, len(rb.Subjects))
			continue
		}
		s := rb.Subjects[0]
		subjectNamespace := s.Namespace
		if subjectNamespace == "" {
			subjectNamespace = ns
		}
		if s.Kind != rbacv1.ServiceAccountKind || s.APIGroup != "" || s.Name != saName || subjectNamespace != saNamespace {
			t.Errorf("RoleBinding %s/%s: subject %s %s/%s is not the router's ServiceAccount %s/%s", ns, rb.Name, s.Kind, subjectNamespace, s.Name, saNamespace, saName)
			continue
		}
		granted[ns] = granted[ns] || readsSlices[role]
	}
	for ns, pool := range watched {
		if !granted[ns] {
			t.Errorf("pool %s watches EndpointSlices in namespace %s, where no RoleBinding lets ServiceAccount %s list and watch them", pool, ns, saName)
		}
	}
}

// checkGateway checks that routes attach to the Gateway's listener and send traffic to the
// router's Service port, and that the BackendTLSPolicy names that Service and port.
func checkGateway(t *testing.T, b *bundle, want bool) {
	t.Helper()
	if (len(b.HTTPRoutes) > 0 && len(b.GRPCRoutes) > 0 && len(b.BackendTLSPolicies) > 0) != want {
		t.Fatalf("Gateway API objects present: %v", !want)
	}
	if !want {
		return
	}
	listener := func(name, section string) bool {
		for _, g := range b.Gateways {
			for _, l := range g.Spec.Listeners {
				if g.Name == name && string(l.Name) == section {
					return true
				}
			}
		}
		return false
	}
	backend := func(kind, name string, port *int32) {
		s := b.service(name)
		if port == nil {
			t.Errorf("%s backendRef %s names no port", kind, name)
		} else if s == nil || !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == *port }) {
			t.Errorf("%s backendRef %s:%d is not a port of a Service in the set", kind, name, *port)
		}
	}
	for _, r := range b.HTTPRoutes {
		for _, p := range r.Spec.ParentRefs {
			if p.SectionName == nil || !listener(string(p.Name), string(*p.SectionName)) {
				t.Errorf("HTTPRoute %s: parent %s is not a Gateway listener in the set", r.Name, p.Name)
			}
		}
		var prefixes []string
		for _, rule := range r.Spec.Rules {
			for _, m := range rule.Matches {
				prefixes = append(prefixes, *m.Path.Value)
			}
			for _, br := range rule.BackendRefs {
				backend("HTTPRoute", string(br.Name), (*int32)(br.Port))
			}
		}
		if !slices.Contains(prefixes, "/v1") || !slices.Contains(prefixes, "/v2") {
			t.Errorf("HTTPRoute %s matches %v: want the OpenAI /v1 and KServe /v2 prefixes", r.Name, prefixes)
		}
	}
	for _, r := range b.GRPCRoutes {
		for _, rule := range r.Spec.Rules {
			for _, m := range rule.Matches {
				if m.Method == nil || m.Method.Service == nil || *m.Method.Service != "inference.GRPCInferenceService" {
					t.Errorf("GRPCRoute %s does not match the KServe service", r.Name)
				}
			}
			for _, br := range rule.BackendRefs {
				backend("GRPCRoute", string(br.Name), (*int32)(br.Port))
			}
		}
	}
	for _, p := range b.BackendTLSPolicies {
		for _, ref := range p.Spec.TargetRefs {
			s := b.service(string(ref.Name))
			if ref.Kind != "Service" || s == nil || ref.SectionName == nil ||
				!slices.ContainsFunc(s.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Name == string(*ref.SectionName) }) {
				t.Errorf("BackendTLSPolicy %s: target %s/%s is not a Service port in the set", p.Name, ref.Kind, ref.Name)
				continue
			}
			if !strings.HasPrefix(string(p.Spec.Validation.Hostname), s.Name+".") {
				t.Errorf("BackendTLSPolicy %s: hostname %s is not a name of Service %s", p.Name, p.Spec.Validation.Hostname, s.Name)
			}
		}
		if len(p.Spec.Validation.CACertificateRefs) == 0 {
			t.Errorf("BackendTLSPolicy %s names no CA", p.Name)
		}
	}
}

// checkProbesServed starts the router from the set's configuration, on loopback and with
// its model servers, discovery, etcd and certificate left out, and asks the admin port for what the
// probes and the ServiceMonitor ask for.
func checkProbesServed(t *testing.T, d *appsv1.Deployment, cfg *config.Config) {
	t.Helper()
	cfg.Listen, cfg.AdminListen, cfg.Server.TLS = "127.0.0.1:0", "127.0.0.1:0", nil
	cfg.Cluster = config.Cluster{}
	for i := range cfg.Pools {
		if cfg.Pools[i].Discovery != nil {
			// Outside a cluster a discovered pool never gets its first set, and stays unready.
			cfg.Pools[i].Discovery = nil
			cfg.Pools[i].Endpoints = append(cfg.Pools[i].Endpoints, "http://placeholder")
		}
		for j := range cfg.Pools[i].Endpoints {
			cfg.Pools[i].Endpoints[j] = fmt.Sprintf("http://127.0.0.1:%d", j+1)
		}
	}
	var raw []byte
	if err := cfg.Finish(raw); err != nil {
		t.Fatal(err)
	}
	srv, err := app.Start(context.Background(), cfg, app.WithLogOutput(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	c := d.Spec.Template.Spec.Containers[0]
	for _, p := range []string{c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path, "/metrics"} {
		resp, err := http.Get("http://" + srv.AdminAddr() + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("admin %s: %s", p, resp.Status)
		}
	}
}

// TestOverlayConfigsAgree keeps the configurations that overlays carry whole in step with
// the base's: the TLS overlay's differs only in server.tls, the discovery overlay's only in
// how its pools find their endpoints.
func TestOverlayConfigsAgree(t *testing.T) {
	load := func(dir string) *config.Config {
		t.Helper()
		objs, err := kustomize(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if o["kind"] == "ConfigMap" {
				data := []byte(o["data"].(map[string]any)["switchyard.yaml"].(string))
				cfg, err := config.Parse(data)
				if err != nil {
					t.Fatal(err)
				}
				return cfg
			}
		}
		t.Fatalf("%s: no ConfigMap", dir)
		return nil
	}
	base, tls := load("kustomize/base"), load("kustomize/overlays/tls")
	if tls.Server.TLS == nil {
		t.Fatal("the TLS overlay's configuration has no server.tls")
	}
	tls.Server.TLS = nil
	if b, o := base.Marshal(), tls.Marshal(); !bytes.Equal(b, o) {
		t.Errorf("the TLS overlay's configuration differs from the base's beyond server.tls:\n%s", firstDiff(b, o))
	}
	disc := load("kustomize/overlays/discovery")
	if len(disc.Pools) != len(base.Pools) {
		t.Fatalf("the discovery overlay has %d pools, the base %d", len(disc.Pools), len(base.Pools))
	}
	for i := range disc.Pools {
		p := &disc.Pools[i]
		if p.Discovery == nil || p.Discovery.Kubernetes == nil {
			t.Errorf("the discovery overlay's pool %s has no Kubernetes discovery", p.Name)
		}
		p.Discovery, p.Endpoints = nil, base.Pools[i].Endpoints
	}
	if b, o := base.Marshal(), disc.Marshal(); !bytes.Equal(b, o) {
		t.Errorf("the discovery overlay's configuration differs from the base's beyond its pools' endpoints and discovery:\n%s", firstDiff(b, o))
	}
}
