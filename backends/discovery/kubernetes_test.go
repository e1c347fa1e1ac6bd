package discovery_test

import (
	"context"
	"slices"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	discoveryv1client "k8s.io/client-go/kubernetes/typed/discovery/v1"
	fakediscoveryv1 "k8s.io/client-go/kubernetes/typed/discovery/v1/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/switchyard-ai/switchyard/backends/discovery"
)

// fakeClient is client-go's generated fake of the discovery/v1 API group over its object
// tracker, wired as the fake clientset wires every group (without compiling the other
// groups' fakes).
type fakeClient struct {
	fake    *k8stesting.Fake
	tracker k8stesting.ObjectTracker
}

func newFakeClient(t *testing.T) *fakeClient {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := discoveryv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	tracker := k8stesting.NewObjectTracker(scheme, serializer.NewCodecFactory(scheme).UniversalDecoder())
	f := &k8stesting.Fake{}
	f.AddReactor("*", "*", k8stesting.ObjectReaction(tracker))
	f.AddWatchReactor("*", func(action k8stesting.Action) (bool, watch.Interface, error) {
		var opts metav1.ListOptions
		if wa, ok := action.(k8stesting.WatchActionImpl); ok {
			opts = wa.ListOptions
		}
		w, err := tracker.Watch(action.GetResource(), action.GetNamespace(), opts)
		return err == nil, w, err
	})
	return &fakeClient{fake: f, tracker: tracker}
}

func (c *fakeClient) DiscoveryV1() discoveryv1client.DiscoveryV1Interface {
	return &fakediscoveryv1.FakeDiscoveryV1{Fake: c.fake}
}

// IsWatchListSemanticsUnSupported tells client-go's reflector to list, then watch, as it
// does for the fake clientset.
func (c *fakeClient) IsWatchListSemanticsUnSupported() bool { return true }

func (c *fakeClient) slices(ns string) discoveryv1client.EndpointSliceInterface {
	return c.DiscoveryV1().EndpointSlices(ns)
}

type ep struct {
	addr  string
	ready *bool
}

var (
	yes = new(true)
	no  = new(false)
)

func slice(name, service string, port int32, eps ...ep) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "models",
			Labels: map[string]string{discoveryv1.LabelServiceName: service, "app": service}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports: []discoveryv1.EndpointPort{
			{Name: new("metrics"), Port: new(int32(9100))},
			{Name: new("http"), Port: new(port)},
		},
	}
	for _, e := range eps {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{e.addr}, Conditions: discoveryv1.EndpointConditions{Ready: e.ready}})
	}
	return s
}

// TestKubernetesFollowsEndpointSlices adds, updates and deletes EndpointSlices through the
// fake API and checks each reported set: only ready (or unknown) endpoints, only the named
// port, only the Service's slices.
func TestKubernetesFollowsEndpointSlices(t *testing.T) {
	for _, by := range []struct {
		name string
		opt  discovery.KubernetesOption
	}{{"service", discovery.WithService("vllm")}, {"selector", discovery.WithSelector("app=vllm")}} {
		t.Run(by.name, func(t *testing.T) {
			c := newFakeClient(t)
			ctx := context.Background()
			api := c.slices("models")
			if _, err := api.Create(ctx, slice("vllm-a", "vllm", 8000, ep{"10.0.0.1", yes}, ep{"10.0.0.2", no}), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			// Another Service's slice, and one in another namespace: never reported.
			c.slices("models").Create(ctx, slice("tgi-a", "tgi", 8080, ep{"10.0.9.1", yes}), metav1.CreateOptions{})
			c.slices("other").Create(ctx, slice("vllm-x", "vllm", 8000, ep{"10.0.8.1", yes}), metav1.CreateOptions{})

			src := discovery.NewKubernetes(c, "models", by.opt, discovery.WithPortName("http"))
			updates := make(chan []string, 16)
			runCtx, cancel := context.WithCancel(ctx)
			done := make(chan error)
			go func() { done <- src.Run(runCtx, func(u []string) { updates <- u }) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Error(err)
				}
			}()
			expect := func(want ...string) { t.Helper(); expectUpdate(t, updates, want...) }
			expect("http://10.0.0.1:8000")

			// A second slice of the Service, with an endpoint whose readiness is unknown.
			if _, err := api.Create(ctx, slice("vllm-b", "vllm", 8000, ep{"10.0.0.3", nil}), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			expect("http://10.0.0.1:8000", "http://10.0.0.3:8000")

			// 10.0.0.2 becomes ready, 10.0.0.1 stops being ready.
			if _, err := api.Update(ctx, slice("vllm-a", "vllm", 8000, ep{"10.0.0.1", no}, ep{"10.0.0.2", yes}), metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			expect("http://10.0.0.2:8000", "http://10.0.0.3:8000")

			if err := api.Delete(ctx, "vllm-b", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			expect("http://10.0.0.2:8000")

			// Every endpoint gone is reported as it is: the API's word is authoritative.
			if err := api.Delete(ctx, "vllm-a", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			expect()
		})
	}
}

func TestKubernetesPortAndScheme(t *testing.T) {
	c := newFakeClient(t)
	ctx := context.Background()
	c.slices("models").Create(ctx, slice("vllm-a", "vllm", 8001, ep{"10.0.0.1", yes}), metav1.CreateOptions{})
	tests := []struct {
		name string
		opts []discovery.KubernetesOption
		want []string
	}{
		{"first port by default", nil, []string{"http://10.0.0.1:9100"}},
		{"named port, grpc", []discovery.KubernetesOption{discovery.WithPortName("http"), discovery.WithKubernetesScheme("grpc")}, []string{"grpc://10.0.0.1:8001"}},
		{"no such port", []discovery.KubernetesOption{discovery.WithPortName("grpc")}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := discovery.NewKubernetes(c, "models", append(tt.opts, discovery.WithService("vllm"))...)
			runCtx, cancel := context.WithCancel(ctx)
			got := make(chan []string, 1)
			done := make(chan error)
			go func() {
				done <- src.Run(runCtx, func(u []string) {
					select {
					case got <- u:
					default:
					}
				})
			}()
			select {
			case u := <-got:
				if !slices.Equal(u, tt.want) {
					t.Errorf("got %q, want %q", u, tt.want)
				}
			case <-time.After(10 * time.Second):
				t.Error("no update")
			}
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
}
