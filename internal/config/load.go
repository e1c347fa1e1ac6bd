package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// FieldError is one problem in a configuration, located by its field path and YAML line.
type FieldError struct {
	Path string // e.g. pools[1].endpoints[0]; empty for syntax errors
	Line int    // 1-based line in the file; 0 when the field is absent from the file
	Msg  string
}

func (e FieldError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a configuration, in file order.
type Errors struct {
	File string
	List []FieldError
}

func (e *Errors) Error() string {
	var b strings.Builder
	for i, fe := range e.List {
		if i > 0 {
			b.WriteByte('\n')
		}
		if e.File != "" {
			b.WriteString(e.File + ": ")
		}
		b.WriteString(fe.Error())
	}
	return b.String()
}

// Load reads, decodes, defaults and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data)
	var errs *Errors
	if errors.As(err, &errs) {
		errs.File = path
	}
	return c, err
}

// Parse decodes YAML, rejecting unknown keys, then applies defaults and validates. Errors are
// an *Errors listing every problem with its line.
func Parse(data []byte) (*Config, error) {
	c, root, err := decode(data)
	if err != nil {
		return nil, err
	}
	c.SetDefaults()
	if err := c.validate(root); err != nil {
		return nil, err
	}
	return c, nil
}

// Decode decodes YAML without validating, so callers can merge command-line settings before
// calling Finish. Unknown keys are errors.
func Decode(data []byte) (*Config, error) {
	c, _, err := decode(data)
	return c, err
}

var lineRE = regexp.MustCompile(`^line (\d+): (.*)$`)

func decode(data []byte) (*Config, *yaml.Node, error) {
	c := &Config{}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, nil, &Errors{List: []FieldError{yamlError(err.Error())}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && err != io.EOF {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			errs := &Errors{}
			for _, m := range te.Errors {
				errs.List = append(errs.List, yamlError(m))
			}
			return nil, nil, errs
		}
		return nil, nil, &Errors{List: []FieldError{yamlError(err.Error())}}
	}
	return c, &root, nil
}

// yamlError turns a yaml.v3 message ("yaml: line 3: ..." or "line 3: ...") into a FieldError.
func yamlError(msg string) FieldError {
	msg = strings.TrimPrefix(msg, "yaml: ")
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return FieldError{Line: line, Msg: m[2]}
	}
	return FieldError{Msg: msg}
}

// Finish applies defaults and validates a configuration built by Decode and command-line
// flags. Errors carry no line numbers beyond what root provides; root may be nil.
func (c *Config) Finish(data []byte) error {
	var root *yaml.Node
	if len(data) > 0 {
		var n yaml.Node
		if yaml.Unmarshal(data, &n) == nil {
			root = &n
		}
	}
	c.SetDefaults()
	return c.validate(root)
}

// Marshal renders the configuration as YAML; after SetDefaults it shows every effective value.
func (c *Config) Marshal() []byte {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		panic(err) // the schema only holds marshalable types
	}
	enc.Close()
	return b.Bytes()
}

// lineOf finds the line of the node at path (map keys and sequence indexes) below root,
// or of the deepest ancestor present; 0 when root is nil.
func lineOf(root *yaml.Node, path ...any) int {
	if root == nil {
		return 0
	}
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, p := range path {
		switch k := p.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return line
			}
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					line, n, found = n.Content[i].Line, n.Content[i+1], true
					break
				}
			}
			if !found {
				return line
			}
		case int:
			if n.Kind != yaml.SequenceNode || k >= len(n.Content) {
				return line
			}
			n = n.Content[k]
			line = n.Line
		}
	}
	return line
}
