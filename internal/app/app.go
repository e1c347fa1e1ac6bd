package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/switchyard-ai/switchyard/internal/config"
	"github.com/switchyard-ai/switchyard/policy"
)

// Version is the release version, set at link time with -ldflags "-X ...app.Version=v1.2.3".
var Version = "dev"

const usage = `Switchyard is a gRPC-native inference router for GPU model servers.

Usage:
  switchyard demo [--listen ADDR] [--admin-listen ADDR] [--print-config]
  switchyard serve [--config FILE] [--listen ADDR] [--admin-listen ADDR]
                   [--backend MODEL=URL[,URL...]]... [--kserve-backend MODEL=HOST:PORT[,HOST:PORT...]]...
  switchyard config check FILE
  switchyard hash-key KEY            print the SHA-256 digest to configure an API key with
  switchyard sim [--listen ADDR] [--model NAME] [latency, capacity and fault flags]
  switchyard version

Run "switchyard COMMAND -h" for the flags of a command.
`

// errUsage marks a command-line mistake; the process exits with status 2.
var errUsage = errors.New("usage")

// ExitCode is the process exit status for an error returned by Main.
func ExitCode(err error) int {
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

// Main runs the switchyard command line with args (without the program name) until ctx is
// done or the command finishes. Tests call it as the binary would be called.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: no command", errUsage)
	}
	switch args[0] {
	case "serve":
		return serveCmd(ctx, args[1:], stdout, stderr)
	case "demo":
		return demoCmd(ctx, args[1:], stdout, stderr)
	case "sim":
		return simCmd(ctx, args[1:], stdout, stderr)
	case "config":
		if len(args) != 3 || args[1] != "check" {
			fmt.Fprint(stderr, usage)
			return fmt.Errorf("%w: want: switchyard config check FILE", errUsage)
		}
		return configCheck(args[2], stdout)
	case "hash-key":
		if len(args) != 2 || args[1] == "" {
			return fmt.Errorf("%w: want: switchyard hash-key KEY", errUsage)
		}
		fmt.Fprintln(stdout, policy.HashKey(args[1]))
		return nil
	case "version":
		fmt.Fprintln(stdout, "switchyard", version())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}

func version() string {
	v := Version
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
	}
	return v
}

func configCheck(path string, stdout io.Writer) error {
	c, err := config.Load(path)
	if err != nil {
		return err
	}
	stdout.Write(c.Marshal())
	return nil
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// serveFlags are serve's command-line settings; each overrides the config file.
type serveFlags struct {
	configFile  string
	listen      string
	adminListen string
	backends    multiFlag
	kserve      multiFlag
	etcd        string
}

func (f *serveFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.configFile, "config", "", "configuration `FILE` (YAML); optional when --backend is given")
	fs.StringVar(&f.listen, "listen", "", "data-plane `ADDR`ess, overriding the config's listen (default 127.0.0.1:8080)")
	fs.StringVar(&f.adminListen, "admin-listen", "", "admin `ADDR`ess, overriding the config's admin_listen (default 127.0.0.1:9090)")
	fs.Var(&f.backends, "backend", "`MODEL=URL[,URL...]`: serve MODEL from these OpenAI-compatible servers (repeatable; replaces a model of that name from the file)")
	fs.StringVar(&f.etcd, "etcd", "", "`HOST:PORT[,HOST:PORT...]`: share sessions and limits with other replicas through these etcd members, overriding the config's cluster.etcd.endpoints")
	fs.Var(&f.kserve, "kserve-backend", "`MODEL=HOST:PORT[,HOST:PORT...]`: serve MODEL from these KServe v2 gRPC servers (repeatable; replaces a model of that name from the file)")
}

// load builds the effective configuration: the file (if any), then each flag over it.
func (f *serveFlags) load() (*config.Config, error) {
	var data []byte
	cfg := &config.Config{}
	if f.configFile != "" {
		var err error
		if data, err = os.ReadFile(f.configFile); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if cfg, err = config.Decode(data); err != nil {
			return nil, withFile(err, f.configFile)
		}
	}
	if f.listen != "" {
		cfg.Listen = f.listen
	}
	if f.adminListen != "" {
		cfg.AdminListen = f.adminListen
	}
	if f.etcd != "" {
		cfg.SetEtcd(f.etcd)
	}
	for _, b := range f.backends {
		if err := cfg.AddBackend(b); err != nil {
			return nil, fmt.Errorf("%w: %w", errUsage, err)
		}
	}
	for _, b := range f.kserve {
		if err := cfg.AddKServeBackend(b); err != nil {
			return nil, fmt.Errorf("%w: %w", errUsage, err)
		}
	}
	if err := cfg.Finish(data); err != nil {
		return nil, withFile(err, f.configFile)
	}
	return cfg, nil
}

func withFile(err error, file string) error {
	var errs *config.Errors
	if errors.As(err, &errs) && file != "" {
		errs.File = file
	}
	return err
}

func serveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f serveFlags
	f.bind(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if f.configFile == "" && len(f.backends) == 0 && len(f.kserve) == 0 {
		return fmt.Errorf("%w: serve needs --config FILE or at least one --backend MODEL=URL or --kserve-backend MODEL=HOST:PORT", errUsage)
	}
	cfg, err := f.load()
	if err != nil {
		return err
	}
	TuneRuntime(cfg.Server)
	opts := []StartOption{WithLogOutput(stderr)}
	if f.configFile != "" {
		opts = append(opts, WithConfigFile(f.configFile, f.load))
	}
	s, err := Start(ctx, cfg, opts...)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "switchyard %s serving on http://%s (admin http://%s)\n", version(), s.Addr(), s.AdminAddr())
	<-ctx.Done()
	return s.Shutdown(context.Background())
}
