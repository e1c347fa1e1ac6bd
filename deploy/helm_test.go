package deploy

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"sigs.k8s.io/yaml"
)

// chartMeta is Chart.yaml, decoded strictly.
type chartMeta struct {
	APIVersion  string `json:"apiVersion"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Type        string `json:"type"`
	Version     string `json:"version"`
	AppVersion  string `json:"appVersion"`
}

// renderChart renders the chart in dir as `helm template RELEASE dir --namespace NS` does:
// values.yaml with overrides merged over it, each template in templates/ (not the _partials)
// executed with text/template and the few Sprig and Helm functions the chart uses, and empty
// output dropped. Missing values render as empty text, as in Helm. The output lists each
// template's result under a "# Source:" line, in file-name order.
func renderChart(dir, release, namespace string, overrides map[string]any) ([]byte, error) {
	var meta chartMeta
	raw, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return nil, err
	}
	if err := yaml.UnmarshalStrict(raw, &meta); err != nil {
		return nil, fmt.Errorf("Chart.yaml: %w", err)
	}
	values := map[string]any{}
	if raw, err = os.ReadFile(filepath.Join(dir, "values.yaml")); err != nil {
		return nil, err
	}
	if err := yaml.Unmarshal(raw, &values); err != nil {
		return nil, fmt.Errorf("values.yaml: %w", err)
	}
	// Overrides pass through YAML too, so their numbers are float64 like the file's.
	raw, _ = yaml.Marshal(overrides)
	var over map[string]any
	yaml.Unmarshal(raw, &over)
	mergeValues(values, over)

	base := meta.Name + "/templates"
	root := template.New("").Option("missingkey=zero")
	root.Funcs(chartFuncs(root))
	var names []string
	err = filepath.WalkDir(filepath.Join(dir, "templates"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		name := path.Join(base, filepath.Base(p))
		if _, err := root.New(name).Parse(string(src)); err != nil {
			return err
		}
		if !strings.HasPrefix(filepath.Base(p), "_") {
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out bytes.Buffer
	for _, name := range names {
		data := map[string]any{
			"Values": values,
			"Chart":  meta,
			"Release": map[string]any{"Name": release, "Namespace": namespace, "Service": "Helm",
				"IsInstall": true, "IsUpgrade": false, "Revision": 1},
			"Template": map[string]any{"Name": name, "BasePath": base},
		}
		var b bytes.Buffer
		if err := root.ExecuteTemplate(&b, name, data); err != nil {
			return nil, err
		}
		text := strings.ReplaceAll(b.String(), "<no value>", "")
		if strings.TrimSpace(text) == "" {
			continue
		}
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", name, strings.TrimSpace(text))
	}
	return out.Bytes(), nil
}

// mergeValues merges src into dst: maps merge key by key, anything else replaces.
func mergeValues(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeValues(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// chartFuncs are the Helm and Sprig functions the chart may use, with Sprig's argument order
// and types, so a template that works here works under helm.
func chartFuncs(root *template.Template) template.FuncMap {
	return template.FuncMap{
		"include": func(name string, data any) (string, error) {
			var b bytes.Buffer
			err := root.ExecuteTemplate(&b, name, data)
			return b.String(), err
		},
		"toYaml": func(v any) string {
			b, err := yaml.Marshal(v)
			if err != nil {
				return ""
			}
			return strings.TrimSuffix(string(b), "\n")
		},
		"indent":  indent,
		"nindent": func(n int, s string) string { return "\n" + indent(n, s) },
		"default": func(d any, given ...any) any {
			if len(given) == 0 || isEmpty(given[0]) {
				return d
			}
			return given[0]
		},
		"required": func(msg string, v any) (any, error) {
			if isEmpty(v) {
				return nil, errors.New(msg)
			}
			return v, nil
		},
		"ternary": func(t, f any, cond bool) any {
			if cond {
				return t
			}
			return f
		},
		"quote": func(vs ...any) string {
			var q []string
			for _, v := range vs {
				if v != nil {
					q = append(q, strconv.Quote(fmt.Sprint(v)))
				}
			}
			return strings.Join(q, " ")
		},
		"join": func(sep string, v any) string {
			var parts []string
			rv := reflect.ValueOf(v)
			if rv.Kind() == reflect.Slice {
				for i := range rv.Len() {
					parts = append(parts, fmt.Sprint(rv.Index(i).Interface()))
				}
			}
			return strings.Join(parts, sep)
		},
		"omit": func(m map[string]any, keys ...string) map[string]any {
			out := map[string]any{}
			for k, v := range m {
				out[k] = v
			}
			for _, k := range keys {
				delete(out, k)
			}
			return out
		},
		"contains":   func(sub, s string) bool { return strings.Contains(s, sub) },
		"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
		"trunc": func(n int, s string) string {
			if n >= 0 && len(s) > n {
				return s[:n]
			}
			return s
		},
		"sha256sum": func(s string) string { sum := sha256.Sum256([]byte(s)); return hex.EncodeToString(sum[:]) },
		"b64enc":    func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
		"int":       func(v any) int { return int(toFloat(v)) },
		"until": func(n int) []int {
			out := make([]int, max(n, 0))
			for i := range out {
				out[i] = i
			}
			return out
		},
		"add1": func(v any) int64 { return int64(toFloat(v)) + 1 },
		"div":  func(a, b any) int64 { return int64(toFloat(a)) / int64(toFloat(b)) },
	}
}

func indent(n int, s string) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
}

// isEmpty is Sprig's notion of empty: nil, a zero number, false, or an empty string,
// slice or map.
func isEmpty(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String, reflect.Slice, reflect.Map, reflect.Array:
		return rv.Len() == 0
	case reflect.Bool:
		return !rv.Bool()
	case reflect.Int, reflect.Int64, reflect.Int32:
		return rv.Int() == 0
	case reflect.Float64, reflect.Float32:
		return rv.Float() == 0
	}
	return false
}

// toFloat converts the numbers that values hold (float64 from YAML, int from templates).
func toFloat(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case int:
		return float64(n)
	case int64:
		return float64(n)
	case string:
		f, err := strconv.ParseFloat(n, 64)
		if err == nil {
			return f
		}
	}
	return 0 // as Sprig: what is not a number is 0
}
