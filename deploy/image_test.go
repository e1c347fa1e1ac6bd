package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// dockerfile is what the tests read from the Dockerfile: each stage's FROM and the final
// stage's instructions.
type dockerfile struct {
	stages []string            // FROM lines, in order
	final  map[string][]string // instruction → arguments, in the last stage
	runs   []string            // RUN lines of every stage, continuations joined
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	f, err := os.Open("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := dockerfile{}
	sc := bufio.NewScanner(f)
	var line string
	for sc.Scan() {
		text := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(text, "#") || (text == "" && line == "") {
			continue
		}
		if cont, ok := strings.CutSuffix(text, "\\"); ok {
			line += cont + " "
			continue
		}
		line += text
		instr, args, _ := strings.Cut(line, " ")
		line = ""
		switch strings.ToUpper(instr) {
		case "FROM":
			d.stages = append(d.stages, args)
			d.final = map[string][]string{}
		case "RUN":
			d.runs = append(d.runs, args)
		}
		d.final[strings.ToUpper(instr)] = append(d.final[strings.ToUpper(instr)], args)
	}
	return d
}

// TestDockerfile checks the image recipe against the manifests: a build stage that makes a
// static binary, a distroless final stage that runs it as the same non-root user the pods
// run as, and a default command that reads the configuration where the manifests mount it.
func TestDockerfile(t *testing.T) {
	d := readDockerfile(t)
	if len(d.stages) < 2 {
		t.Fatalf("%d stages, want a build stage and a runtime stage", len(d.stages))
	}
	if !strings.HasPrefix(d.stages[len(d.stages)-1], "gcr.io/distroless/static") {
		t.Errorf("final stage %q is not distroless static", d.stages[len(d.stages)-1])
	}
	static := false
	for _, r := range d.runs {
		if strings.Contains(r, "CGO_ENABLED=0") && strings.Contains(r, "go build") && strings.Contains(r, "./cmd/switchyard") {
			static = true
		}
	}
	if !static {
		t.Error("no RUN builds ./cmd/switchyard with CGO_ENABLED=0")
	}
	user := d.final["USER"]
	if len(user) != 1 {
		t.Fatalf("final stage USER %q, want one", user)
	}
	uid, _, _ := strings.Cut(user[0], ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("USER %s: want a numeric non-root id, which runAsNonRoot can verify", user[0])
	}
	objs, err := kustomize("kustomize/base")
	if err != nil {
		t.Fatal(err)
	}
	var stream []byte
	for _, o := range objs {
		stream = append(append(stream, "---\n"...), mustYAML(t, o)...)
	}
	b, err := decodeAll(stream)
	if err != nil {
		t.Fatal(err)
	}
	pod := b.routers()[0].Spec.Template.Spec
	if got := strconv.FormatInt(*pod.SecurityContext.RunAsUser, 10); got != uid {
		t.Errorf("pods run as %s, the image as %s", got, uid)
	}
	if cmd := strings.Join(d.final["CMD"], ""); !strings.Contains(cmd, `"`+pod.Containers[0].Args[1]+`"`) {
		t.Errorf("CMD %s does not read the configuration from %s", cmd, pod.Containers[0].Args[1])
	}
}

// TestDockerignore checks that the build context keeps every file the binary is built from.
func TestDockerignore(t *testing.T) {
	raw, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(raw), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	out, err := exec.Command("go", "list", "-deps", "-f", `{{if .Module}}{{if .Module.Main}}{{.Dir}}{{range .GoFiles}} {{.}}{{end}}{{end}}{{end}}`, "../cmd/switchyard").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, _ := filepath.Abs("..")
	files := []string{"go.mod", "go.sum"}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		dir, _ := filepath.Rel(root, f[0])
		for _, name := range f[1:] {
			files = append(files, filepath.ToSlash(filepath.Join(dir, name)))
		}
	}
	if len(files) < 10 {
		t.Fatalf("go list found %d files", len(files))
	}
	for _, f := range files {
		for _, p := range patterns {
			if ignored(p, f) {
				t.Errorf(".dockerignore pattern %q drops %s, which the binary is built from", p, f)
			}
		}
	}
}

// ignored reports whether a .dockerignore pattern excludes a file: the pattern matches the
// path or one of its parent directories, with a leading **/ matching at any depth.
func ignored(pattern, file string) bool {
	parts := strings.Split(file, "/")
	for i := 1; i <= len(parts); i++ {
		prefix := strings.Join(parts[:i], "/")
		if ok, _ := filepath.Match(pattern, prefix); ok {
			return true
		}
		if rest, ok := strings.CutPrefix(pattern, "**/"); ok {
			for j := 0; j < i; j++ {
				if ok, _ := filepath.Match(rest, strings.Join(parts[j:i], "/")); ok {
					return true
				}
			}
		}
	}
	return false
}
