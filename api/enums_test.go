package api_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/paycore/withdraw/api"
	"github.com/paycore/withdraw/internal/intake"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// schemaJSON returns a schema file decoded.
func schemaJSON(t *testing.T, name string) map[string]any {
	t.Helper()
	b, ok := api.Schema(name)
	if !ok {
		t.Fatalf("no schema %s", name)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// at walks a decoded JSON document.
func at(t *testing.T, doc any, path ...string) any {
	t.Helper()
	for _, p := range path {
		m, ok := doc.(map[string]any)
		if !ok {
			t.Fatalf("%v: not an object at %q", path, p)
		}
		doc = m[p]
	}
	return doc
}

func stringList(t *testing.T, v any) []string {
	t.Helper()
	var out []string
	for _, x := range v.([]any) {
		s, ok := x.(string)
		if !ok {
			t.Fatalf("%v is not a list of strings", v)
		}
		out = append(out, s)
	}
	return out
}

// goConstants lists the values of the constants of a named type declared
// in internal/withdrawal, so that a constant added there without the schema
// fails the test (the package has no list of every state or event type).
func goConstants(t *testing.T, typeName string) []string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("../internal/withdrawal/*.go")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		if filepath.Ext(f) != ".go" || len(f) > 8 && f[len(f)-8:] == "_test.go" {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != typeName {
					continue
				}
				for _, v := range vs.Values {
					lit, ok := v.(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Fatalf("%s constant that is not a string literal", typeName)
					}
					s, _ := strconv.Unquote(lit.Value)
					out = append(out, s)
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no constants of type %s found", typeName)
	}
	return out
}

func sameSet(t *testing.T, what string, schema, code []string) {
	t.Helper()
	a, b := slices.Sorted(slices.Values(schema)), slices.Sorted(slices.Values(code))
	if !slices.Equal(a, b) {
		t.Errorf("%s: schema has %v, code has %v", what, a, b)
	}
}

// TestReasonCodesMatch: the schema's reason codes are withdrawal.ReasonCodes,
// and ReasonCodes is every ReasonCode constant.
func TestReasonCodesMatch(t *testing.T) {
	var codes []string
	for _, c := range withdrawal.ReasonCodes {
		codes = append(codes, string(c))
	}
	sameSet(t, "ReasonCodes vs constants", codes, goConstants(t, "ReasonCode"))
	sameSet(t, "reason codes", stringList(t, at(t, schemaJSON(t, "common"), "$defs", "reasonCode", "enum")), codes)
}

// TestChannelsMatch: the channel enum, the per-channel command schemas and
// the event schemas cover withdrawal.Channels.
func TestChannelsMatch(t *testing.T) {
	var chans []string
	for _, c := range withdrawal.Channels {
		chans = append(chans, string(c))
		if _, ok := api.Schema("command." + string(c)); !ok {
			t.Errorf("no schema command.%s", c)
		}
	}
	sameSet(t, "Channels vs constants", chans, goConstants(t, "Channel"))
	sameSet(t, "channels", stringList(t, at(t, schemaJSON(t, "common"), "$defs", "channel", "enum")), chans)
	var refs []string
	for _, r := range at(t, schemaJSON(t, "command"), "oneOf").([]any) {
		refs = append(refs, r.(map[string]any)["$ref"].(string))
	}
	var want []string
	for _, c := range chans {
		want = append(want, "command."+c+".json")
	}
	sameSet(t, "command.json oneOf", refs, want)
}

// TestStatesAndEventTypesMatch: the state enums are the State constants
// (SUBMITTING only as a previous state, since it is never versioned), the
// event types are the EventType constants, each type has its schema, and
// each type's schema pins the state it is emitted for and the previous
// states the state machine allows before it.
func TestStatesAndEventTypesMatch(t *testing.T) {
	states := goConstants(t, "State")
	var versioned []string
	for _, s := range states {
		if withdrawal.State(s).Versioned() {
			versioned = append(versioned, s)
		}
	}
	common := schemaJSON(t, "common")
	sameSet(t, "state", stringList(t, at(t, common, "$defs", "state", "enum")), versioned)
	sameSet(t, "previous_state", stringList(t, at(t, common, "$defs", "previousState", "enum")), append([]string{""}, states...))

	types := goConstants(t, "EventType")
	sameSet(t, "event types", stringList(t, at(t, common, "$defs", "eventType", "enum")), types)
	var refs []string
	for _, r := range at(t, schemaJSON(t, "event"), "oneOf").([]any) {
		refs = append(refs, r.(map[string]any)["$ref"].(string))
	}
	var want []string
	for _, s := range versioned {
		st := withdrawal.State(s)
		typ := string(st.EventType())
		name := "event." + typ[len("withdrawal."):]
		want = append(want, name+".json")
		doc := schemaJSON(t, name)
		if got := at(t, doc, "properties", "type", "const"); got != typ {
			t.Errorf("%s: type %v, want %s", name, got, typ)
		}
		if got := at(t, doc, "properties", "state", "const"); got != s {
			t.Errorf("%s: state %v, want %s", name, got, s)
		}
		// What may precede the state: a state it can be entered from, the
		// dispatcher's claim (SUBMITTING) of such a state, and nothing for
		// the first event of a withdrawal or a rejection.
		var prev []string
		switch st {
		case withdrawal.StateAccepted, withdrawal.StateRejected:
			prev = append(prev, "")
		}
		for _, from := range states {
			if withdrawal.CanTransition(withdrawal.State(from), st) {
				prev = append(prev, from)
			}
		}
		if len(prev) > 0 && !slices.Contains(prev, string(withdrawal.StateSubmitting)) && prev[0] != "" {
			prev = append(prev, string(withdrawal.StateSubmitting))
		}
		var got []string
		if c, ok := at(t, doc, "properties", "previous_state").(map[string]any)["const"]; ok {
			got = []string{c.(string)}
		} else {
			got = stringList(t, at(t, doc, "properties", "previous_state", "enum"))
		}
		sameSet(t, name+" previous_state", got, prev)
	}
	sameSet(t, "event.json oneOf", refs, want)
}

// TestAsyncAPIMatchesCode: the AsyncAPI document's dead-letter headers are
// the intake's, its payloads name existing schemas, and its topics are the
// defaults.
func TestAsyncAPIMatchesCode(t *testing.T) {
	var doc map[string]any
	if err := yaml.Unmarshal(api.AsyncAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	if v := doc["asyncapi"]; v != "3.0.0" {
		t.Errorf("asyncapi %v", v)
	}
	msgs := doc["components"].(map[string]any)["messages"].(map[string]any)
	headers := func(msg string) []string {
		props := msgs[msg].(map[string]any)["headers"].(map[string]any)["properties"].(map[string]any)
		var out []string
		for k := range props {
			out = append(out, k)
		}
		return out
	}
	sameSet(t, "dead-letter headers", headers("deadLetter"), []string{intake.HeaderError, intake.HeaderOriginalTopic,
		intake.HeaderOriginalPartition, intake.HeaderOriginalOffset, intake.HeaderTruncated, intake.HeaderOriginalSize,
		intake.HeaderOriginalSHA256, intake.HeaderOriginalKeySize, intake.HeaderOriginalKeySHA256, intake.HeaderOriginalHeadersDropped})
	for name, schema := range map[string]string{"command": "schemas/command.json", "event": "schemas/event.json"} {
		ref := msgs[name].(map[string]any)["payload"].(map[string]any)["schema"].(map[string]any)["$ref"]
		if ref != schema {
			t.Errorf("%s payload $ref %v, want %s", name, ref, schema)
		}
	}
	addr := map[string]string{}
	for name, ch := range doc["channels"].(map[string]any) {
		addr[name] = ch.(map[string]any)["address"].(string)
	}
	if addr["commands"] != "withdraw.commands" || addr["events"] != "withdraw.events" || addr["deadLetters"] != "withdraw.commands.dlq" {
		t.Errorf("addresses %v", addr)
	}
}
