// Package api holds the machine-readable contracts of the withdrawal
// topics: api/asyncapi.yaml (the topics, keys, headers and delivery
// guarantees) and the JSON Schemas under api/schemas. They are embedded so
// that withdrawctl can print them and tests can hold them against the code
// that produces and consumes the messages.
package api

import (
	"embed"
	"io/fs"
	"slices"
	"strings"
)

//go:embed asyncapi.yaml schemas/*.json
var files embed.FS

// AsyncAPI returns api/asyncapi.yaml.
func AsyncAPI() []byte {
	b, err := files.ReadFile("asyncapi.yaml")
	if err != nil {
		panic(err) // embedded at build time: cannot be missing
	}
	return b
}

// Schemas is the api/schemas directory: one file per schema, named
// <name>.json, whose $ref values are relative to the directory.
func Schemas() fs.FS {
	sub, err := fs.Sub(files, "schemas")
	if err != nil {
		panic(err)
	}
	return sub
}

// SchemaNames lists the schemas by name (the file name without ".json"),
// sorted: "command", "command.wechatpay_cancel", "event", "event.rejected"…
func SchemaNames() []string {
	entries, err := fs.ReadDir(Schemas(), ".")
	if err != nil {
		panic(err)
	}
	var names []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// Schema returns the schema of that name, and false when there is none.
func Schema(name string) ([]byte, bool) {
	if !slices.Contains(SchemaNames(), name) {
		return nil, false
	}
	b, err := fs.ReadFile(Schemas(), name+".json")
	return b, err == nil
}
