package deploy

import (
	"fmt"

	monv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"
)

// bundle is one rendered manifest set, each object decoded into its Kubernetes, Gateway API
// or Prometheus Operator type. An object's empty namespace is the one the set is applied to.
type bundle struct {
	Deployments        []*appsv1.Deployment
	StatefulSets       []*appsv1.StatefulSet
	Services           []*corev1.Service
	ConfigMaps         []*corev1.ConfigMap
	Secrets            []*corev1.Secret
	ServiceAccounts    []*corev1.ServiceAccount
	PDBs               []*policyv1.PodDisruptionBudget
	Roles              []*rbacv1.Role
	RoleBindings       []*rbacv1.RoleBinding
	ServiceMonitors    []*monv1.ServiceMonitor
	Gateways           []*gwv1.Gateway
	HTTPRoutes         []*gwv1.HTTPRoute
	GRPCRoutes         []*gwv1.GRPCRoute
	BackendTLSPolicies []*gwv1.BackendTLSPolicy
}

// add decodes one object strictly: a field its type does not have, or a value of the wrong
// type, is an error, as the API server's strict field validation would report.
func (b *bundle) add(doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	var obj any
	switch tm.APIVersion + " " + tm.Kind {
	case "apps/v1 Deployment":
		o := &appsv1.Deployment{}
		b.Deployments, obj = append(b.Deployments, o), o
	case "apps/v1 StatefulSet":
		o := &appsv1.StatefulSet{}
		b.StatefulSets, obj = append(b.StatefulSets, o), o
	case "v1 Service":
		o := &corev1.Service{}
		b.Services, obj = append(b.Services, o), o
	case "v1 ConfigMap":
		o := &corev1.ConfigMap{}
		b.ConfigMaps, obj = append(b.ConfigMaps, o), o
	case "v1 Secret":
		o := &corev1.Secret{}
		b.Secrets, obj = append(b.Secrets, o), o
	case "v1 ServiceAccount":
		o := &corev1.ServiceAccount{}
		b.ServiceAccounts, obj = append(b.ServiceAccounts, o), o
	case "policy/v1 PodDisruptionBudget":
		o := &policyv1.PodDisruptionBudget{}
		b.PDBs, obj = append(b.PDBs, o), o
	case "rbac.authorization.k8s.io/v1 Role":
		o := &rbacv1.Role{}
		b.Roles, obj = append(b.Roles, o), o
	case "rbac.authorization.k8s.io/v1 RoleBinding":
		o := &rbacv1.RoleBinding{}
		b.RoleBindings, obj = append(b.RoleBindings, o), o
	case "monitoring.coreos.com/v1 ServiceMonitor":
		o := &monv1.ServiceMonitor{}
		b.ServiceMonitors, obj = append(b.ServiceMonitors, o), o
	case "gateway.networking.k8s.io/v1 Gateway":
		o := &gwv1.Gateway{}
		b.Gateways, obj = append(b.Gateways, o), o
	case "gateway.networking.k8s.io/v1 HTTPRoute":
		o := &gwv1.HTTPRoute{}
		b.HTTPRoutes, obj = append(b.HTTPRoutes, o), o
	case "gateway.networking.k8s.io/v1 GRPCRoute":
		o := &gwv1.GRPCRoute{}
		b.GRPCRoutes, obj = append(b.GRPCRoutes, o), o
	case "gateway.networking.k8s.io/v1 BackendTLSPolicy":
		o := &gwv1.BackendTLSPolicy{}
		b.BackendTLSPolicies, obj = append(b.BackendTLSPolicies, o), o
	default:
		return fmt.Errorf("unexpected object %s %s", tm.APIVersion, tm.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return fmt.Errorf("%s: %w", tm.Kind, err)
	}
	return nil
}

// decodeAll decodes every document of a rendered YAML stream into a bundle.
func decodeAll(stream []byte) (*bundle, error) {
	b := &bundle{}
	for _, doc := range splitDocs(stream) {
		var probe map[string]any
		if err := yaml.Unmarshal(doc, &probe); err != nil {
			return nil, err
		}
		if probe == nil {
			continue
		}
		if err := b.add(doc); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// service finds a Service by name.
func (b *bundle) service(name string) *corev1.Service {
	for _, s := range b.Services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// serviceAccount finds a ServiceAccount by name.
func (b *bundle) serviceAccount(name string) *corev1.ServiceAccount {
	for _, sa := range b.ServiceAccounts {
		if sa.Name == name {
			return sa
		}
	}
	return nil
}

// role finds a Role by namespace and name.
func (b *bundle) role(namespace, name string) *rbacv1.Role {
	for _, r := range b.Roles {
		if inNamespace(r.Namespace) == namespace && r.Name == name {
			return r
		}
	}
	return nil
}

// setNamespace is the namespace every set is applied to: helm template --namespace, and
// kubectl apply -n for the Kustomize sets.
const setNamespace = "switchyard"

// inNamespace is the namespace an object with metadata.namespace ns ends up in.
func inNamespace(ns string) string {
	if ns == "" {
		return setNamespace
	}
	return ns
}

// routers are the Deployments of the router itself.
func (b *bundle) routers() []*appsv1.Deployment {
	var out []*appsv1.Deployment
	for _, d := range b.Deployments {
		if d.Labels["app.kubernetes.io/component"] == "router" {
			out = append(out, d)
		}
	}
	return out
}
