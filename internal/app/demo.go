package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchyard-ai/switchyard/backends/sim"
	"github.com/switchyard-ai/switchyard/cluster/etcd/etcdembed"
	"github.com/switchyard-ai/switchyard/internal/config"
	"github.com/switchyard-ai/switchyard/policy"
)

// fleetMember is one simulated model server of the demo fleet.
type fleetMember struct {
	pool string
	sim  sim.Config
}

// demoFleet is two endpoints of a small, fast chat model and two of a large, slower one. The
// large model prefills four times and decodes three times slower, with half the batch slots,
// as a 70B model does next to an 8B one on the same GPU type.
func demoFleet() []fleetMember {
	small := sim.Config{Model: "sim-small", MaxRunning: 16, PrefillPerToken: 50 * time.Microsecond,
		DecodePerToken: 4 * time.Millisecond, KVBlocks: 4096, TensorModel: demoTensorModel}
	large := sim.Config{Model: "sim-large", MaxRunning: 8, PrefillPerToken: 200 * time.Microsecond,
		DecodePerToken: 12 * time.Millisecond, KVBlocks: 2048}
	return []fleetMember{{"small", small}, {"small", small}, {"large", large}, {"large", large}}
}

// demoTensorModel is the KServe v2 model the small servers also serve (an add/sub model).
const demoTensorModel = "sim-tensor"

// demoConfig is the router configuration for the fleet whose endpoints are addrs: a pool per
// chat model, a KServe v2 pool of the small servers' gRPC side for the tensor model, and API
// keys: an ordinary one and one with deliberately small limits.
func demoConfig(listen, adminListen string, addrs []string, key, limitedKey string) *config.Config {
	c := &config.Config{Listen: listen, AdminListen: adminListen}
	c.Auth.APIKeys = []config.APIKey{
		{Name: "demo", SHA256: policy.HashKey(key), Tenant: "demo"},
		{Name: "demo-limited", SHA256: policy.HashKey(limitedKey), Tenant: "limited"},
	}
	c.Tenants = []config.Tenant{{Name: "demo"}, {Name: "limited"}}
	c.Limits.Rules = []config.LimitRule{
		{Name: "limited-requests", Requests: 5, Window: config.Duration(time.Minute), Match: map[string]string{"tenant": "limited"}},
		{Name: "limited-tokens", Tokens: 2000, Window: config.Duration(time.Minute), Match: map[string]string{"tenant": "limited"}},
	}
	pools := map[string]int{}
	tensor := config.Pool{Name: "tensor", Protocol: "kserve", Metrics: "triton"}
	for i, m := range demoFleet() {
		at, ok := pools[m.pool]
		if !ok {
			c.Pools = append(c.Pools, config.Pool{Name: m.pool, Metrics: "vllm"})
			at = len(c.Pools) - 1
			pools[m.pool] = at
			c.Models = append(c.Models, config.Model{Name: m.sim.Model, Pool: m.pool})
		}
		c.Pools[at].Endpoints = append(c.Pools[at].Endpoints, "http://"+addrs[i])
		if m.pool == "small" {
			tensor.Endpoints = append(tensor.Endpoints, "grpc://"+addrs[i])
		}
	}
	c.Pools = append(c.Pools, tensor)
	c.Models = append(c.Models, config.Model{Name: demoTensorModel, Pool: "tensor"})
	// auto: short prompts to the small model, long or critical ones to the large one.
	c.Models = append(c.Models, config.Model{Name: "auto", Routes: []config.RouteRule{
		{When: &config.RouteMatch{Priorities: []string{"critical"}}, To: []config.RouteTarget{{Model: "sim-large"}}},
		{When: &config.RouteMatch{MaxPromptTokens: 1000}, To: []config.RouteTarget{{Model: "sim-small"}}},
		{To: []config.RouteTarget{{Model: "sim-large"}}},
	}})
	c.SetDefaults()
	return c
}

func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "router data-plane `ADDR`ess")
	adminListen := fs.String("admin-listen", "127.0.0.1:9090", "router admin `ADDR`ess")
	fleetPort := fs.Int("fleet-port", 8101, "first of four consecutive loopback `PORT`s for the simulated model servers; 0 picks free ports")
	printConfig := fs.Bool("print-config", false, "print the demo's effective router configuration as YAML and exit")
	key := fs.String("api-key", "sk-demo", "the demo's ordinary API `KEY`")
	limitedKey := fs.String("limited-api-key", "sk-demo-limited", "an API `KEY` limited to 5 requests and 2000 tokens a minute")
	replicas := fs.Int("replicas", 1, "router `N`: more than one starts N replicas sharing sessions and limits through an embedded etcd, on consecutive ports from --listen's and --admin-listen's")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	fleet := demoFleet()
	addrs := make([]string, len(fleet))
	for i := range fleet {
		port := 0
		if *fleetPort != 0 {
			port = *fleetPort + i
		}
		addrs[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	if *printConfig {
		fmt.Fprint(stdout, demoConfigHeader)
		stdout.Write(demoConfig(*listen, *adminListen, addrs, *key, *limitedKey).Marshal())
		return nil
	}
	if *key == "" || *key == *limitedKey {
		return fmt.Errorf("%w: --api-key and --limited-api-key must be set and differ", errUsage)
	}
	if *replicas < 1 || *replicas > 16 {
		return fmt.Errorf("%w: --replicas must be between 1 and 16", errUsage)
	}
	listens, err := consecutive(*listen, *replicas)
	if err != nil {
		return fmt.Errorf("%w: --listen: %w", errUsage, err)
	}
	adminListens, err := consecutive(*adminListen, *replicas)
	if err != nil {
		return fmt.Errorf("%w: --admin-listen: %w", errUsage, err)
	}
	d, err := startDemo(ctx, listens, adminListens, addrs, *key, *limitedKey, stderr)
	if err != nil {
		return err
	}
	printDemoHelp(stdout, d, *key, *limitedKey)
	<-ctx.Done()
	return d.shutdown()
}

const demoConfigHeader = `# Switchyard demo configuration (switchyard demo --print-config).
# Two pools of simulated vLLM servers: "small" serves sim-small, "large" serves sim-large;
# the small servers also serve the KServe v2 tensor model sim-tensor over gRPC ("tensor").
# The virtual model auto sends short prompts to sim-small, long or critical ones to sim-large.
# Two API keys are configured (their SHA-256 digests below): tenant "demo" and tenant
# "limited" with 5 requests and 2000 tokens a minute. For a real deployment, replace the keys
# (switchyard hash-key KEY prints a digest) and the endpoints (your model servers' root URLs),
# set listen to :8080 inside a container, and see docs/configuration.md for every field.
`

// consecutive returns n addresses on addr's host, from its port on; port 0 stays 0 (free ports).
func consecutive(addr string, n int) ([]string, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port+n-1 > 65535 {
		return nil, fmt.Errorf("bad port in %q", addr)
	}
	out := make([]string, n)
	for i := range n {
		p := port
		if p != 0 {
			p += i
		}
		out[i] = net.JoinHostPort(host, strconv.Itoa(p))
	}
	return out, nil
}

// demo is a running simulated fleet plus the routers in front of it, and with more than one
// router, the embedded etcd they share.
type demo struct {
	routers []*Server
	etcd    *etcdembed.Cluster
	etcdDir string
	fleet   []*http.Server
	sims    []*sim.Server
	addrs   []string
	members []fleetMember
	wg      sync.WaitGroup
}

// startDemo starts the fleet on addrs (port 0 picks a free one) and a router per listen
// address; several routers share an embedded single-member etcd.
func startDemo(ctx context.Context, listens, adminListens, addrs []string, key, limitedKey string, logOut io.Writer) (*demo, error) {
	d := &demo{members: demoFleet()}
	var lc net.ListenConfig
	for i, m := range d.members {
		s, err := sim.New(m.sim)
		if err != nil {
			d.shutdown()
			return nil, err
		}
		ln, err := lc.Listen(ctx, "tcp", addrs[i])
		if err != nil {
			s.Close()
			d.shutdown()
			return nil, fmt.Errorf("demo fleet: %w", err)
		}
		srv := &http.Server{Handler: s.CombinedHandler(), Protocols: sim.H2C(), ReadHeaderTimeout: 10 * time.Second}
		d.sims, d.fleet = append(d.sims, s), append(d.fleet, srv)
		d.addrs = append(d.addrs, ln.Addr().String())
		d.wg.Go(func() { srv.Serve(ln) })
	}
	if len(listens) > 1 {
		var err error
		if d.etcdDir, err = os.MkdirTemp("", "switchyard-demo-etcd-"); err == nil {
			d.etcd, err = etcdembed.Start(d.etcdDir, 1)
		}
		if err != nil {
			d.shutdown()
			return nil, fmt.Errorf("demo etcd: %w", err)
		}
	}
	for i := range listens {
		cfg := demoConfig(listens[i], adminListens[i], d.addrs, key, limitedKey)
		cfg.Log.Level = "warn" // the demo's terminal is for the user's requests, not request logs
		if d.etcd != nil {
			cfg.SetEtcd(d.etcd.Endpoints())
			cfg.Cluster.ReplicaID = fmt.Sprintf("demo-%d", i)
		}
		r, err := Start(ctx, cfg, WithLogOutput(logOut))
		if err != nil {
			d.shutdown()
			return nil, err
		}
		d.routers = append(d.routers, r)
	}
	return d, nil
}

func (d *demo) shutdown() error {
	var errs []error
	for _, r := range d.routers {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, r.Shutdown(ctx))
		cancel()
	}
	if d.etcd != nil {
		d.etcd.Close()
	}
	if d.etcdDir != "" {
		os.RemoveAll(d.etcdDir)
	}
	for _, s := range d.sims {
		s.Close()
	}
	for _, srv := range d.fleet {
		srv.Close()
	}
	d.wg.Wait()
	return errors.Join(errs...)
}

func printDemoHelp(w io.Writer, d *demo, key, limitedKey string) {
	router := d.routers[0]
	base := "http://" + router.Addr()
	fmt.Fprintf(w, "Switchyard demo: a simulated GPU fleet behind the router.\n\n")
	for i, m := range d.members {
		fmt.Fprintf(w, "  %-10s pool %-6s endpoint http://%s\n", m.sim.Model, m.pool, d.addrs[i])
	}
	fmt.Fprintf(w, "\nRouter:  %s   (metrics: http://%s/metrics)\n", base, router.AdminAddr())
	for i, r := range d.routers[1:] {
		fmt.Fprintf(w, "Replica %d: http://%s   (metrics: http://%s/metrics)\n", i+1, r.Addr(), r.AdminAddr())
	}
	if d.etcd != nil {
		fmt.Fprintf(w, "Replicas share sessions and limits through the embedded etcd at %s (admin view: http://%s/cluster).\n", d.etcd.Endpoints(), router.AdminAddr())
	}
	fmt.Fprintf(w, "API keys: %s (ordinary), %s (5 requests and 2000 tokens a minute: see 429 at once)\n\nTry:\n", key, limitedKey)
	auth := "-H 'Authorization: Bearer " + key + "' "
	fmt.Fprintf(w, "  curl -s %s%s/v1/models\n", auth, base)
	fmt.Fprintf(w, "  curl -s %s%s/v1/chat/completions -H 'content-type: application/json' \\\n"+
		"    -d '{\"model\":\"sim-small\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello!\"}]}'\n", auth, base)
	fmt.Fprintf(w, "  curl -si %s%s/v1/chat/completions -H 'content-type: application/json' -H 'x-priority: critical' \\\n"+
		"    -d '{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello!\"}]}'   # see x-switchyard-model\n", auth, base)
	fmt.Fprintf(w, "  curl -sN %s%s/v1/chat/completions -H 'content-type: application/json' \\\n"+
		"    -d '{\"model\":\"sim-large\",\"stream\":true,\"max_tokens\":20,\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story.\"}]}'\n", auth, base)
	fmt.Fprintf(w, "  python3 -c 'from openai import OpenAI; c = OpenAI(base_url=\"%s/v1\", api_key=\"%s\");"+
		" print(c.chat.completions.create(model=\"sim-small\", messages=[{\"role\": \"user\", \"content\": \"Hi\"}]).choices[0].message.content)'\n", base, key)
	fmt.Fprintf(w, "  for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%%{http_code} ' -H 'Authorization: Bearer %s' %s/v1/chat/completions \\\n"+
		"    -H 'content-type: application/json' -d '{\"model\":\"sim-small\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}'; done; echo\n", limitedKey, base)
	fmt.Fprintf(w, "  curl -s %s%s/v2/models/%s/infer -H 'content-type: application/json' \\\n"+
		"    -d '{\"inputs\":[{\"name\":\"INPUT0\",\"shape\":[1,4],\"datatype\":\"INT32\",\"data\":[1,2,3,4]},"+
		"{\"name\":\"INPUT1\",\"shape\":[1,4],\"datatype\":\"INT32\",\"data\":[10,20,30,40]}]}'\n", auth, base, demoTensorModel)
	fmt.Fprintf(w, "  KServe v2 gRPC (also gRPC-Web and Connect) on the same address: %s, service inference.GRPCInferenceService\n", router.Addr())
	if len(d.routers) > 1 {
		var bases []string
		for _, r := range d.routers {
			bases = append(bases, "http://"+r.Addr())
		}
		fmt.Fprintf(w, "\nAcross replicas: one conversation, its turns sent to each replica in turn, stays on one endpoint;\n"+
			"the limited key's 5 requests a minute hold across all of them (replicas sync usage every 100ms):\n")
		fmt.Fprintf(w, "  for b in %s; do curl -s -o /dev/null -w '%%{http_code} %%header{x-switchyard-endpoint}\\n' %s$b/v1/chat/completions \\\n"+
			"    -H 'x-session-id: conv-1' -H 'content-type: application/json' -d '{\"model\":\"sim-small\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}'; done\n",
			strings.Join(bases, " "), auth)
		fmt.Fprintf(w, "  for b in %s %s; do curl -s -o /dev/null -w '%%{http_code} ' -H 'Authorization: Bearer %s' $b/v1/chat/completions \\\n"+
			"    -H 'content-type: application/json' -d '{\"model\":\"sim-small\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}'; sleep 0.3; done; echo\n",
			strings.Join(bases, " "), strings.Join(bases, " "), limitedKey)
	}
	fmt.Fprintf(w, "\nCtrl-C stops everything.\n")
}

// simCmd runs one simulated model server.
func simCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8000", "`ADDR`ess to serve the OpenAI API and /metrics on")
	var cfg sim.Config
	cfg.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	s, err := sim.New(cfg)
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	defer s.Close()
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s.CombinedHandler(), Protocols: sim.H2C(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "switchyard sim serving OpenAI and KServe v2 REST on http://%s, KServe v2 gRPC on grpc://%s\n", ln.Addr(), ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		return nil
	}
}
