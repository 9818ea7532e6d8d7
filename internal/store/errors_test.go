package store_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/paycore/withdraw/internal/store"
)

func TestRetryCollided(t *testing.T) {
	deadlock := fmt.Errorf("claim: %w", &mysql.MySQLError{Number: 1213})
	other := errors.New("connection refused")
	for _, tc := range []struct {
		name       string
		results    []error // what each attempt returns, in order
		calls      int
		collisions int
		want       error
	}{
		{"WinsAtOnce", []error{nil}, 1, 0, nil},
		{"WinsAfterLosingTwice", []error{deadlock, deadlock, nil}, 3, 2, nil},
		{"GivesUpAfterTheLastAttempt", []error{deadlock, deadlock, deadlock, nil}, store.CollisionAttempts, store.CollisionAttempts, deadlock},
		{"OtherErrorsAreNotRetried", []error{other, nil}, 1, 0, other},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls, collisions := 0, 0
			err := store.RetryCollided(func() error {
				calls++
				return tc.results[calls-1]
			}, func() { collisions++ })
			if !errors.Is(err, tc.want) || calls != tc.calls || collisions != tc.collisions {
				t.Errorf("err %v after %d calls, %d collisions; want %v, %d, %d", err, calls, collisions, tc.want, tc.calls, tc.collisions)
			}
		})
	}
}
