package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// kustomization is the subset of kustomize's Kustomization that these manifests use:
// resources (files or directories with their own kustomization.yaml) and JSON 6902 patches
// aimed at one object by kind and name. Decoding is strict, so a field outside the subset
// fails the test instead of being silently ignored.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
	Patches    []struct {
		Target struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
		} `json:"target"`
		Patch string `json:"patch"`
	} `json:"patches"`
}

// patchOp is one RFC 6902 operation; add, replace and remove are supported.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// kustomize renders the kustomization in dir as kubectl kustomize would, for the subset
// above: resources in order, then each patch applied to its target.
func kustomize(dir string) ([]map[string]any, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(raw, &k); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		return nil, fmt.Errorf("%s: not a kustomize.config.k8s.io/v1beta1 Kustomization", dir)
	}
	var objs []map[string]any
	for _, r := range k.Resources {
		path := filepath.Join(dir, r)
		fi, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		if fi.IsDir() {
			sub, err := kustomize(path)
			if err != nil {
				return nil, err
			}
			objs = append(objs, sub...)
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		docs, err := splitObjects(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		objs = append(objs, docs...)
	}
	for _, p := range k.Patches {
		var ops []patchOp
		if err := yaml.UnmarshalStrict([]byte(p.Patch), &ops); err != nil {
			return nil, fmt.Errorf("%s: patch for %s %s: %w", dir, p.Target.Kind, p.Target.Name, err)
		}
		hit := false
		for _, o := range objs {
			md, _ := o["metadata"].(map[string]any)
			if o["kind"] != p.Target.Kind || md["name"] != p.Target.Name {
				continue
			}
			hit = true
			for _, op := range ops {
				if err := applyOp(o, op); err != nil {
					return nil, fmt.Errorf("%s: patch %s %s: %s %s: %w", dir, p.Target.Kind, p.Target.Name, op.Op, op.Path, err)
				}
			}
		}
		if !hit {
			return nil, fmt.Errorf("%s: no %s named %s to patch", dir, p.Target.Kind, p.Target.Name)
		}
	}
	return objs, nil
}

// splitObjects parses a multi-document YAML stream, skipping empty documents.
func splitObjects(data []byte) ([]map[string]any, error) {
	var objs []map[string]any
	for _, doc := range splitDocs(data) {
		var o map[string]any
		if err := yaml.Unmarshal(doc, &o); err != nil {
			return nil, err
		}
		if o != nil {
			objs = append(objs, o)
		}
	}
	return objs, nil
}

// splitDocs splits a YAML stream at its "---" separator lines.
func splitDocs(data []byte) [][]byte {
	var docs [][]byte
	var cur []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimRight(line, " ") == "---" {
			docs = append(docs, []byte(strings.Join(cur, "\n")))
			cur = nil
			continue
		}
		cur = append(cur, line)
	}
	return append(docs, []byte(strings.Join(cur, "\n")))
}

// applyOp applies one JSON patch operation to obj in place.
func applyOp(obj map[string]any, op patchOp) error {
	if !strings.HasPrefix(op.Path, "/") {
		return fmt.Errorf("path must start with /")
	}
	keys := strings.Split(op.Path[1:], "/")
	for i, k := range keys {
		keys[i] = strings.ReplaceAll(strings.ReplaceAll(k, "~1", "/"), "~0", "~")
	}
	_, err := patchAt(obj, keys, op)
	return err
}

// patchAt applies op at keys below v and returns v's new value (a slice grows or shrinks,
// so its parent must store the result).
func patchAt(v any, keys []string, op patchOp) (any, error) {
	k, last := keys[0], len(keys) == 1
	switch c := v.(type) {
	case map[string]any:
		child, exists := c[k]
		if !last {
			if !exists {
				return nil, fmt.Errorf("no member %q", k)
			}
			nv, err := patchAt(child, keys[1:], op)
			c[k] = nv
			return c, err
		}
		switch {
		case op.Op == "add":
			c[k] = op.Value
		case !exists:
			return nil, fmt.Errorf("no member %q", k)
		case op.Op == "replace":
			c[k] = op.Value
		case op.Op == "remove":
			delete(c, k)
		default:
			return nil, fmt.Errorf("unsupported op")
		}
		return c, nil
	case []any:
		if last && op.Op == "add" && k == "-" {
			return append(c, op.Value), nil
		}
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 || i > len(c) || (i == len(c) && !(last && op.Op == "add")) {
			return nil, fmt.Errorf("no element %q", k)
		}
		if !last {
			nv, err := patchAt(c[i], keys[1:], op)
			c[i] = nv
			return c, err
		}
		switch op.Op {
		case "add":
			return append(c[:i], append([]any{op.Value}, c[i:]...)...), nil
		case "replace":
			c[i] = op.Value
			return c, nil
		case "remove":
			return append(c[:i], c[i+1:]...), nil
		}
		return nil, fmt.Errorf("unsupported op")
	}
	return nil, fmt.Errorf("cannot index %T with %q", v, k)
}
