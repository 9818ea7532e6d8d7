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
