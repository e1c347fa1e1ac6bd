package config_test

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/switchyard-ai/switchyard/internal/config"
)

// TestReferenceDocumentsEveryKey keeps docs/configuration.md in step with the schema: every
// YAML key of every config struct must appear in it as `key`.
func TestReferenceDocumentsEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	var walk func(reflect.Type)
	seen := map[reflect.Type]bool{}
	walk = func(typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] {
			return
		}
		seen[typ] = true
		for f := range typ.Fields() {
			key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if key == "" || key == "-" {
				continue
			}
			if !strings.Contains(string(doc), "`"+key+"`") && !strings.Contains(string(doc), "."+key+"`") && !strings.Contains(string(doc), "`"+key+".") && !strings.Contains(string(doc), "`"+key+"[]") && !strings.Contains(string(doc), "."+key+"[]") {
				t.Errorf("docs/configuration.md does not document %s.%s (`%s`)", typ.Name(), f.Name, key)
			}
			walk(f.Type)
		}
	}
	walk(reflect.TypeFor[config.Config]())
}
