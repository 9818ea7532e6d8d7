package store_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// escapes are the store identifiers that hand out a connection or take a
// statement: using one outside store is speaking SQL without importing a
// database package.
var escapes = []string{"Gorm", "LegacyTx", "Exec", "Query"}

// sqlImports are the packages that speak SQL: only package store should
// import them, so that every statement lives in one place.
var sqlImports = []string{"gorm.io/gorm", "gorm.io/gorm/clause", "gorm.io/driver/mysql", "database/sql",
	"github.com/go-sql-driver/mysql", "github.com/glebarez/sqlite"}

// stillSpeakingSQL are the packages that build statements of their own
// today. The list may only shrink: move a package's statements into store
// as named operations, then delete it here. Benchmarks, test environments
// and the chaos harness fill and inspect databases on purpose.
var stillSpeakingSQL = []string{
	// Harnesses, not the product.
	"cmd/bench", "internal/bench", "internal/bench/scale", "internal/chaos", "internal/dispatch/dispatchbench", "internal/storetest", "internal/testenv",
}

// TestOnlyStoreSpeaksSQL fails when a package outside store (and the list
// above) starts importing a database package, and when a listed package no
// longer does (then the list must shrink).
func TestOnlyStoreSpeaksSQL(t *testing.T) {
	root := filepath.Join("..", "..")
	speaking := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != root || d.Name() == "vendor") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if slices.Contains(sqlImports, p) {
				speaking[filepath.ToSlash(rel)] = true
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok || !slices.Contains(escapes, sel.Sel.Name) {
				return true
			}
			// Gorm is a method of *store.DB; the others are functions of
			// package store.
			if x, ok := sel.X.(*ast.Ident); sel.Sel.Name == "Gorm" || ok && x.Name == "store" {
				speaking[filepath.ToSlash(rel)] = true
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for pkg := range speaking {
		if pkg != "internal/store" && !strings.HasPrefix(pkg, "internal/store/") && !slices.Contains(stillSpeakingSQL, pkg) {
			t.Errorf("%s imports a database package: its statements belong in internal/store", pkg)
		}
	}
	for _, pkg := range stillSpeakingSQL {
		if !speaking[pkg] {
			t.Errorf("%s no longer imports a database package: remove it from stillSpeakingSQL", pkg)
		}
	}
}
