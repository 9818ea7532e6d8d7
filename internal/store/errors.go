package store

import (
	"errors"

	"github.com/go-sql-driver/mysql"
)

// Collided reports whether err is a transaction losing to a concurrent one
// on MySQL: a duplicate key (1062: the other committed the same new key
// first) or a deadlock (1213: InnoDB rolled this one back). Running the
// transaction again right away sees the winner's rows. SQLite has one
// writer at a time, whose transactions never collide: false.
func Collided(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1062 || me.Number == 1213)
}

// CollisionAttempts is how many times RetryCollided runs a transaction
// that keeps losing to concurrent ones before it returns the collision.
const CollisionAttempts = 3

// RetryCollided runs txn, again at once while it fails with a collision
// (Collided) and at most CollisionAttempts times in all, and returns its
// last error. No backoff: the winner has committed, so the next attempt
// sees its rows. onCollision, when not nil, is told of every collided
// attempt (a metric).
func RetryCollided(txn func() error, onCollision func()) error {
	var err error
	for range CollisionAttempts {
		if err = txn(); !Collided(err) {
			return err
		}
		if onCollision != nil {
			onCollision()
		}
	}
	return err
}
