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

// escape is the method of *store.DB and *store.Tx that hands out the GORM
// handle: calling it outside store is speaking SQL without importing a
// database package.
const escape = "Gorm"

// sqlImports are the packages that speak SQL: only package store should
// import them, so that every statement lives in one place.
var sqlImports = []string{"gorm.io/gorm", "gorm.io/gorm/clause", "gorm.io/driver/mysql", "database/sql",
	"github.com/go-sql-driver/mysql", "github.com/glebarez/sqlite"}

// harnesses are the packages outside store allowed to speak SQL: the
// benchmarks, the chaos suite and the test helpers fill and inspect
// databases on purpose. No product package is among them, and none may
// join: a product statement belongs in store as a named operation.
var harnesses = []string{
	"cmd/bench", "internal/bench", "internal/bench/scale", "internal/chaos", "internal/dispatch/dispatchbench",
	"internal/storetest", "internal/testenv",
}

// TestOnlyStoreSpeaksSQL fails when a package outside store and the
// harnesses imports a database package or calls Gorm, and when a listed
// harness no longer does (then the list must shrink).
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
			if sel, ok := n.(*ast.SelectorExpr); ok && sel.Sel.Name == escape {
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
		if pkg != "internal/store" && !strings.HasPrefix(pkg, "internal/store/") && !slices.Contains(harnesses, pkg) {
			t.Errorf("%s imports a database package: its statements belong in internal/store", pkg)
		}
	}
	for _, pkg := range harnesses {
		if !speaking[pkg] {
			t.Errorf("%s no longer imports a database package: remove it from harnesses", pkg)
		}
	}
}
