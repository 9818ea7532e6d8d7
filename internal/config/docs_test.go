package config

import (
	"os"
	"strings"
	"testing"
)

// TestDocsConfigTable keeps docs/operations.md's configuration table equal to the
// settings the binaries really parse. Regenerate it with
// `go test ./internal/config -run ConfigTable -update`.
func TestDocsConfigTable(t *testing.T) {
	b, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	table := Markdown()
	if *update {
		start := strings.Index(readme, "| flag | environment | default | meaning |")
		if start < 0 {
			start = strings.Index(readme, "CONFIG_TABLE")
			readme = readme[:start] + table + readme[start+len("CONFIG_TABLE\n"):]
		} else {
			end := strings.Index(readme[start:], "\n\n")
			readme = readme[:start] + table + readme[start+end+1:]
		}
		if err := os.WriteFile("../../docs/operations.md", []byte(readme), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !strings.Contains(readme, table) {
		t.Error("docs/operations.md's configuration table is out of date: go test ./internal/config -run ConfigTable -update")
	}
}
