package api_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/paycore/withdraw/api"
	"github.com/paycore/withdraw/internal/contracttest"
	"github.com/paycore/withdraw/withdrawapi"
)

// jsonBlock is a fenced JSON example of a Markdown file.
var jsonBlock = regexp.MustCompile("(?s)```json\n(.*?)```")

// TestDocumentedExamples: every JSON example the documentation shows is
// what the code accepts. Commands (README.md, api/README.md, the schemas'
// own examples, the provider seeds) are valid by the schema and by the
// intake; events are valid by event.json and decode with withdrawapi.
func TestDocumentedExamples(t *testing.T) {
	type example struct{ where, text string }
	var examples []example
	for _, doc := range []string{"../README.md", "../docs/messages.md", "README.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range jsonBlock.FindAllStringSubmatch(string(b), -1) {
			examples = append(examples, example{doc, m[1]})
		}
	}
	for _, name := range api.SchemaNames() {
		var s struct{ Examples []json.RawMessage }
		b, _ := api.Schema(name)
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		for _, e := range s.Examples {
			examples = append(examples, example{name + ".json examples", string(e)})
		}
	}
	seeds, _ := filepath.Glob("../internal/withdrawal/testdata/seed*.json")
	for _, f := range seeds {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		examples = append(examples, example{f, string(b)})
	}

	var commands, events int
	for _, e := range examples {
		value := []byte(strings.TrimSpace(e.text))
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(value, &probe); err != nil {
			// Not every JSON block is a message (the admin API's errors).
			if !bytes.Contains(value, []byte(`"error"`)) {
				t.Errorf("%s: example is not a JSON object: %v\n%s", e.where, err, value)
			}
			continue
		}
		switch _, isEvent := probe["event_id"]; {
		case isEvent:
			events++
			if err := contracttest.Validate(t, "event", value); err != nil {
				t.Errorf("%s: event example: %v\n%s", e.where, err, value)
			}
			if _, err := withdrawapi.DecodeEvent(value); err != nil {
				t.Errorf("%s: DecodeEvent: %v", e.where, err)
			}
		case probe["out_request_no"] != nil:
			commands++
			if err := intakeVerdict(value); err != nil {
				t.Errorf("%s: the intake refuses the example: %v\n%s", e.where, err, value)
			}
			if err := contracttest.Validate(t, "command", value); err != nil {
				t.Errorf("%s: the schema refuses the example: %v\n%s", e.where, err, value)
			}
		}
	}
	// README's four channels, api/README's one, the schemas' four, the seeds.
	if commands < 9+len(seeds) || events < 3 {
		t.Errorf("found %d command and %d event examples: has the documentation's format changed?", commands, events)
	}
}
