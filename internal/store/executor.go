package store

import (
	"context"

	"gorm.io/gorm"
)

// Executor is where a named operation runs: the pool (*DB) or one
// transaction (*Tx). Every operation of this package takes one, so the
// caller decides whether the operation joins its transaction, and no
// package outside this one ever holds a connection or writes a statement.
// It is sealed: only *DB and *Tx implement it.
type Executor interface {
	// handle is the GORM handle the operation's statements run on.
	handle() *gorm.DB
	// engine is the database engine, for the operations whose SQL differs.
	engine() Dialect
}

// Tx is an open transaction; InTx hands it to its function.
type Tx struct {
	g       *gorm.DB
	dialect Dialect
}

func (tx *Tx) handle() *gorm.DB { return tx.g }
func (tx *Tx) engine() Dialect  { return tx.dialect }

// Dialect names the transaction's database engine.
func (tx *Tx) Dialect() Dialect { return tx.dialect }

func (db *DB) handle() *gorm.DB { return db.g }
func (db *DB) engine() Dialect  { return db.Dialect }

// InTx runs fn in a transaction: committed when fn returns nil, rolled back
// when it returns an error or panics.
func (db *DB) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	return db.g.WithContext(ctx).Transaction(func(g *gorm.DB) error {
		return fn(&Tx{g: g, dialect: db.Dialect})
	})
}

// Gorm is the pool's GORM handle, for tests and harnesses that fill and
// inspect a database on purpose. Product code must not call it: every
// statement of the product lives in this package (TestOnlyStoreSpeaksSQL).
func (db *DB) Gorm() *gorm.DB { return db.g }

// Gorm is the transaction's GORM handle, for tests that read the session's
// counters around an operation. Product code must not call it.
func (tx *Tx) Gorm() *gorm.DB { return tx.g }
