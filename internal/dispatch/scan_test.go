package dispatch_test

import (
	"context"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/dispatch"
	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/schedule"
	"github.com/paycore/withdraw/internal/storetest"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// TestDispatcherScale: the dispatcher over months of rows.
func TestDispatcherScale(t *testing.T) {
	t.Parallel()

	// With thousands of withdrawals in every state the dispatcher scans
	// (UNKNOWN, SUBMITTED waiting for their query time, SUBMITTING under a
	// live lease), an idle dispatcher's claims, re-submission scans and
	// lease expiry read none of them. A time with nanoseconds used to make
	// MariaDB read each state's whole range.
	t.Run("IdleDispatcherReadsNoRowThatIsNotDue", func(t *testing.T) {
		t.Parallel()
		db := storetest.MySQLOneConnection(t)
		later := time.Now().UTC().Add(time.Hour)
		for _, st := range []withdrawal.State{withdrawal.StateUnknown, withdrawal.StateSubmitted, withdrawal.StateSubmitting, withdrawal.StateAccepted} {
			storetest.FillWithdrawals(t, db, st, 2000, later)
		}
		keys, err := pii.ParseKeyring(pii.GenerateKeyLine("k1"))
		if err != nil {
			t.Fatal(err)
		}
		env := providertest.Start(t, sandbox.Options{})
		d, err := dispatch.New(db, env.Registry(), keys, dispatch.Options{Instance: "d1", Rules: schedule.Accelerated(),
			PollInterval: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		before := storetest.IndexRowsRead(t, db)
		if n, err := d.ExpireLeases(ctx); err != nil || n != 0 {
			t.Fatalf("ExpireLeases = %d, %v", n, err)
		}
		if read := storetest.IndexRowsRead(t, db) - before; read > 20 {
			t.Errorf("expiring no lease read %d index rows of 2,000 live leases", read)
		}
		runCtx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		before = storetest.IndexRowsRead(t, db)
		if err := d.Run(runCtx); err != nil {
			t.Fatal(err)
		}
		// About 50 polls; each may read a handful of index entries (one dive
		// per merchant), never the thousands that are not due.
		read := storetest.IndexRowsRead(t, db) - before
		t.Logf("index rows read in an idle second: %d", read)
		if read > 500 {
			t.Errorf("an idle second of dispatching read %d index rows over 8,000 rows that are not due", read)
		}
	})
}
