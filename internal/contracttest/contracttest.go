// Package contracttest compiles the JSON Schemas of api/schemas for tests
// that hold the code producing or consuming messages against them.
package contracttest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/paycore/withdraw/api"
)

// base is where the schemas are placed for the validator: their $id and
// $ref values are relative, so any base works.
const base = "file:///withdraw/api/schemas/"

var (
	once     sync.Once
	schemas  map[string]*jsonschema.Schema
	buildErr error
)

func build() (map[string]*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	for _, name := range api.SchemaNames() {
		b, _ := api.Schema(name)
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%s.json: %w", name, err)
		}
		if err := c.AddResource(base+name+".json", doc); err != nil {
			return nil, fmt.Errorf("%s.json: %w", name, err)
		}
	}
	out := map[string]*jsonschema.Schema{}
	for _, name := range api.SchemaNames() {
		s, err := c.Compile(base + name + ".json")
		if err != nil {
			return nil, fmt.Errorf("compile %s.json: %w", name, err)
		}
		out[name] = s
	}
	return out, nil
}

// Schemas returns every schema of api/schemas compiled, by name
// ("command", "event.rejected"…), or fails the test.
func Schemas(t testing.TB) map[string]*jsonschema.Schema {
	t.Helper()
	once.Do(func() { schemas, buildErr = build() })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return schemas
}

// Validate checks one JSON document against the named schema. It returns
// nil or why the document does not conform; a document that is not JSON
// does not conform.
func Validate(t testing.TB, name string, doc []byte) error {
	t.Helper()
	s, ok := Schemas(t)[name]
	if !ok {
		t.Fatalf("no schema %q", name)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if err := s.Validate(v); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			return fmt.Errorf("%s", ve.Error())
		}
		return err
	}
	return nil
}
