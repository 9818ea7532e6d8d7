package poll_test

import (
	"context"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/poll"
	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/storetest"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// TestIdleSweepReadsNoRowThatIsNotDue: with thousands of succeeded and
// submitted withdrawals that are not due, a sweep reads none of them. Times
// sent with nanoseconds against DATETIME(6) made MariaDB use only the state
// part of (state, next_attempt_at) and walk every row of the state.
func TestIdleSweepReadsNoRowThatIsNotDue(t *testing.T) {
	db := storetest.MySQLOneConnection(t)
	later := time.Now().UTC().Add(time.Hour)
	storetest.FillWithdrawals(t, db, withdrawal.StateSucceeded, 3000, later)
	storetest.FillWithdrawals(t, db, withdrawal.StateSubmitted, 3000, later)
	env := providertest.Start(t, sandbox.Options{})
	p, err := poll.New(db, env.Registry(), poll.Options{Instance: "p1", Rules: testRules(), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	before := storetest.IndexRowsRead(t, db)
	for range 5 {
		st, err := p.Sweep(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Claimed != 0 {
			t.Fatalf("claimed %d rows that are not due", st.Claimed)
		}
	}
	if read := storetest.IndexRowsRead(t, db) - before; read > 50 {
		t.Errorf("5 idle sweeps read %d index rows over 6,000 rows that are not due, want none", read)
	}
}
