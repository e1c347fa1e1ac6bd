package discovery

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	discoveryv1client "k8s.io/client-go/kubernetes/typed/discovery/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// Client is the part of a Kubernetes clientset the EndpointSlice source uses. Both
// client-go's kubernetes.Interface and its fake clientset satisfy it, as does InCluster.
type Client interface {
	DiscoveryV1() discoveryv1client.DiscoveryV1Interface
}

// Kubernetes watches EndpointSlices (of one Service, or matching a label selector) in one
// namespace and reports the ready endpoints' addresses with a named port. Its watch resumes
// by itself after API server outages, keeping the last known set meanwhile.
type Kubernetes struct {
	client    Client
	namespace string
	selector  string
	port      string
	scheme    string
	log       *slog.Logger
}

var _ Source = (*Kubernetes)(nil)

// KubernetesOption configures a Kubernetes source.
type KubernetesOption func(*Kubernetes)

// WithService watches the EndpointSlices of the named Service (label
// kubernetes.io/service-name).
func WithService(name string) KubernetesOption {
	return func(k *Kubernetes) { k.selector = discoveryv1.LabelServiceName + "=" + name }
}

// WithSelector watches the EndpointSlices matching a label selector such as app=vllm.
func WithSelector(selector string) KubernetesOption {
	return func(k *Kubernetes) { k.selector = selector }
}

// WithPortName uses the EndpointSlice port of that name; default each slice's first port.
func WithPortName(name string) KubernetesOption { return func(k *Kubernetes) { k.port = name } }

// WithKubernetesScheme sets the scheme of the endpoint URLs: http (default), https or grpc.
func WithKubernetesScheme(scheme string) KubernetesOption {
	return func(k *Kubernetes) {
		if scheme != "" {
			k.scheme = scheme
		}
	}
}

// WithKubernetesLogger sets where watch problems are reported; default slog.Default().
func WithKubernetesLogger(l *slog.Logger) KubernetesOption {
	return func(k *Kubernetes) {
		if l != nil {
			k.log = l
		}
	}
}

// NewKubernetes returns a source of the EndpointSlices in namespace (default: Namespace()).
// It does no I/O until Run.
func NewKubernetes(client Client, namespace string, opts ...KubernetesOption) *Kubernetes {
	if namespace == "" {
		namespace = Namespace()
	}
	k := &Kubernetes{client: client, namespace: namespace, scheme: "http", log: slog.Default()}
	for _, o := range opts {
		o(k)
	}
	return k
}

// Run implements Source: it lists and watches the EndpointSlices, and once the first list is
// in, reports the set of ready endpoints each time it changes. An empty set is reported too:
// the API server's word that no endpoint is ready is authoritative.
func (k *Kubernetes) Run(ctx context.Context, update func([]string)) error {
	if k.client == nil {
		return fmt.Errorf("discovery: no Kubernetes client")
	}
	// The API server filters by the selector; matching again here costs little and keeps
	// watch events of other slices out whatever the server (or a fake) sends.
	sel, err := labels.Parse(k.selector)
	if err != nil {
		return fmt.Errorf("discovery: selector %q: %w", k.selector, err)
	}
	api := k.client.DiscoveryV1()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = k.selector
			return api.EndpointSlices(k.namespace).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = k.selector
			return api.EndpointSlices(k.namespace).Watch(ctx, o)
		},
	}
	inf := cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, k.client),
		&discoveryv1.EndpointSlice{}, 0, cache.Indexers{})
	changed := make(chan struct{}, 1)
	poke := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}); err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	if err := inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		k.log.Warn("endpoint slice watch failed; keeping the last endpoints", "namespace", k.namespace, "selector", k.selector, "err", err)
	}); err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		inf.RunWithContext(ctx)
	}()
	defer func() { <-done }()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return nil
	}
	var last []string
	for first := true; ; first = false {
		urls := k.endpoints(inf.GetStore().List(), sel)
		if first || !slices.Equal(urls, last) {
			last = urls
			update(append([]string(nil), urls...))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// endpoints turns slices into the sorted URLs of their ready endpoints.
func (k *Kubernetes) endpoints(objs []any, sel labels.Selector) []string {
	urls := []string{}
	for _, o := range objs {
		s, ok := o.(*discoveryv1.EndpointSlice)
		if !ok || !sel.Matches(labels.Set(s.Labels)) {
			continue
		}
		port := k.slicePort(s)
		if port == 0 {
			continue
		}
		for _, ep := range s.Endpoints {
			// A nil ready condition means unknown, which consumers are to treat as ready.
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready || len(ep.Addresses) == 0 {
				continue
			}
			// Every address of an endpoint reaches the same pod; the first is enough.
			urls = append(urls, endpointURL(k.scheme, ep.Addresses[0], port))
		}
	}
	return normalize(urls)
}

// slicePort is the number of the configured port in s, or 0 when s has none.
func (k *Kubernetes) slicePort(s *discoveryv1.EndpointSlice) int {
	for _, p := range s.Ports {
		if p.Port == nil {
			continue
		}
		if k.port == "" || p.Name != nil && *p.Name == k.port {
			return int(*p.Port)
		}
	}
	return 0
}

// InCluster is a Client for the API server of the cluster the process runs in, with its
// pod's service account. It builds only the discovery/v1 client.
type InCluster struct {
	c *discoveryv1client.DiscoveryV1Client
}

// DiscoveryV1 implements Client.
func (c InCluster) DiscoveryV1() discoveryv1client.DiscoveryV1Interface { return c.c }

// NewInCluster returns a Client configured from the pod's service account; it fails outside
// a pod.
func NewInCluster() (Client, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("discovery: kubernetes: %w", err)
	}
	c, err := discoveryv1client.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("discovery: kubernetes: %w", err)
	}
	return InCluster{c}, nil
}

// Namespace is the namespace of the pod the process runs in, from its service account, or
// "default" outside a pod.
func Namespace() string {
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return "default"
}
