package bench_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchyard-ai/switchyard/backends/sim"
	"github.com/switchyard-ai/switchyard/gen/inference"
	"github.com/switchyard-ai/switchyard/internal/app"
	"github.com/switchyard-ai/switchyard/internal/config"
)

// grpcLoad calls ModelInfer from conc goroutines over one ClientConn for d and measures each
// call.
func grpcLoad(addr string, req *inference.ModelInferRequest, conc int, d time.Duration) result {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return result{errors: 1}
	}
	defer conn.Close()
	c := inference.NewGRPCInferenceServiceClient(conn)
	return measure(conc, d, func() error {
		_, err := c.ModelInfer(context.Background(), req)
		return err
	})
}

// BenchmarkKServeOverhead prints gRPC ModelInfer requests/s and p50/p99 latency for a client
// calling a near-zero-latency KServe v2 server directly and through Switchyard, side by side,
// and their ratio.
func BenchmarkKServeOverhead(b *testing.B) {
	s, err := sim.New(sim.Config{Model: "llm", TensorLatency: time.Nanosecond, TensorConcurrency: 1024, MaxWaiting: 4096})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: s.CombinedHandler(), Protocols: sim.H2C()}
	go srv.Serve(ln)
	defer srv.Close()
	up := ln.Addr().String()

	yaml := "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nlog: {level: error}\npools:\n  - name: t\n    protocol: kserve\n    metrics: none\n    endpoints: [grpc://" + up + "]\nmodels:\n  - {name: sim-tensor, pool: t}\n"
	cfg, err := config.Decode([]byte(yaml))
	if err != nil {
		b.Fatal(err)
	}
	if err := cfg.Finish([]byte(yaml)); err != nil {
		b.Fatal(err)
	}
	router, err := app.Start(context.Background(), cfg, app.WithLogOutput(io.Discard))
	if err != nil {
		b.Fatal(err)
	}
	defer router.Shutdown(context.Background())

	vals := make([]int32, 16)
	in := func(name string) *inference.ModelInferRequest_InferInputTensor {
		return &inference.ModelInferRequest_InferInputTensor{Name: name, Datatype: "INT32", Shape: []int64{1, 16},
			Contents: &inference.InferTensorContents{IntContents: vals}}
	}
	req := &inference.ModelInferRequest{ModelName: "sim-tensor", Inputs: []*inference.ModelInferRequest_InferInputTensor{in("INPUT0"), in("INPUT1")}}
	dur := 3 * time.Second
	if testing.Short() {
		dur = 500 * time.Millisecond
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tpath\treq/s\tp50\tp99\terrors\t")
	for b.Loop() {
		const conc = 16
		grpcLoad(up, req, conc, dur/5)
		grpcLoad(router.Addr(), req, conc, dur/5)
		direct := grpcLoad(up, req, conc, dur)
		proxied := grpcLoad(router.Addr(), req, conc, dur)
		name := fmt.Sprintf("ModelInfer 2x[1,16] INT32 c=%d", conc)
		fmt.Fprintf(tw, "%s\tdirect\t%.0f\t%v\t%v\t%d\t\n", name, direct.rps, direct.p50.Round(time.Microsecond), direct.p99.Round(time.Microsecond), direct.errors)
		fmt.Fprintf(tw, "%s\tswitchyard\t%.0f\t%v\t%v\t%d\t\n", name, proxied.rps, proxied.p50.Round(time.Microsecond), proxied.p99.Round(time.Microsecond), proxied.errors)
		fmt.Fprintf(tw, "%s\tratio\t%.2fx\t%.2fx\t%.2fx\t\t\n", name, proxied.rps/direct.rps,
			float64(proxied.p50)/float64(direct.p50), float64(proxied.p99)/float64(direct.p99))
		b.ReportMetric(proxied.rps/direct.rps, "grpc-rps-ratio")
		if direct.errors > 0 || proxied.errors > 0 {
			b.Errorf("%d direct and %d proxied calls failed", direct.errors, proxied.errors)
		}
	}
	tw.Flush()
}
