package dispatch

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/storetest"
)

func TestDueCacheReuseAndExpiry(t *testing.T) {
	var c dueCache
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, _, ok := c.snapshot(t0, nil); ok {
		t.Fatal("an empty cache was reused")
	}
	c.replace(map[string]dueStates{"a": dueAccepted, "b": dueAccepted}, t0)
	got, _, ok := c.snapshot(t0.Add(dueScanMaxAge-time.Millisecond), nil)
	slices.Sort(got)
	if !ok || !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("fresh list = %v, %v", got, ok)
	}
	if _, _, ok := c.snapshot(t0.Add(dueScanMaxAge), nil); ok {
		t.Error("a list dueScanMaxAge old was reused")
	}
	if _, _, ok := c.snapshot(t0.Add(-time.Second), nil); ok {
		t.Error("a list from the future (clock stepped back) was reused")
	}
}

// TestDueCacheDropKeepsLaterAdditions: a claim that read the list before a
// merchant was announced again must not drop it, or the new work would wait
// for the next scan.
func TestDueCacheDropKeepsLaterAdditions(t *testing.T) {
	var c dueCache
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c.add([]string{"x"}, dueAccepted) // before any scan: the scan will find it
	if _, _, ok := c.snapshot(t0, nil); ok {
		t.Fatal("an add created a list without a scan")
	}
	c.replace(map[string]dueStates{"a": dueAccepted, "b": dueAccepted, "c": dueAccepted}, t0)
	_, gen, _ := c.snapshot(t0, nil)
	c.add([]string{"b", "d"}, dueAccepted) // the intake stored more for b, and a new d
	c.drop([]string{"a", "b", "d"}, gen)
	got, _, ok := c.snapshot(t0, nil)
	slices.Sort(got)
	if !ok || !slices.Equal(got, []string{"b", "c", "d"}) {
		t.Errorf("after drop = %v, want [b c d]", got)
	}
	c.drop([]string{"b", "c", "d"}, gen+1)
	if _, _, ok := c.snapshot(t0, nil); ok {
		t.Error("an emptied list was reused: the next claim must scan")
	}
}

// TestDueRangesFollowTheDueStates: a merchant known to have only new
// withdrawals costs one range (one branch of the claim's UNION), one whose
// states are unknown (not in the list's states) gets a range per claimable
// state, and one with only a re-submission due gets only that range.
func TestDueRangesFollowTheDueStates(t *testing.T) {
	due := dueList{
		states:   map[string]dueStates{"new": dueAccepted, "both": dueAccepted | stateBit("UNKNOWN"), "resubmit": 0},
		resubmit: map[string]bool{"resubmit": true},
	}
	quota := map[string]int{"new": 1, "both": 2, "unknown": 3, "resubmit": 4}
	for _, tc := range []struct {
		merchant string
		ranges   []string // the state of each range, "resubmit" for a re-submission's
	}{
		{"new", []string{"ACCEPTED"}},
		{"both", []string{"ACCEPTED", "UNKNOWN"}},
		{"unknown", []string{"ACCEPTED", "UNKNOWN"}},
		{"resubmit", []string{"resubmit"}},
	} {
		var got []string
		for _, r := range dueRanges([]string{tc.merchant}, quota, due) {
			if r.MerchantKey != tc.merchant || r.Limit != quota[tc.merchant] {
				t.Fatalf("%s: range %+v, want the merchant's with limit %d", tc.merchant, r, quota[tc.merchant])
			}
			if r.Resubmit {
				got = append(got, "resubmit")
			} else {
				got = append(got, r.State)
			}
		}
		if !slices.Equal(got, tc.ranges) {
			t.Errorf("%s: ranges for %v, want %v", tc.merchant, got, tc.ranges)
		}
	}
}

// TestResolveReadsTheServedMerchantsStates: a reused list learns the due
// states of the merchants a claim serves from the cache; one known only
// from the re-submission scan gets the empty set (its re-submission branch
// alone), and one the cache no longer lists stays unknown (all branches).
func TestResolveReadsTheServedMerchantsStates(t *testing.T) {
	var c dueCache
	c.replace(map[string]dueStates{"a": dueAccepted, "b": dueAccepted | stateBit("UNKNOWN")}, time.Now())
	l := dueList{resubmit: map[string]bool{"r": true}}
	l.resolve(&c, []string{"a", "r", "x"})
	want := map[string]dueStates{"a": dueAccepted, "r": 0}
	if !maps.Equal(l.states, want) {
		t.Fatalf("states %v, want %v (b is not served, x is not listed)", l.states, want)
	}
}

// TestResubmitScanWaitBoundsTheScansShare: a fast scan is repeated every
// second; a slow one (a day of SUBMITTED rows at 08:00) waits twenty times
// its own time, and no answer is reused for more than a minute.
func TestResubmitScanWaitBoundsTheScansShare(t *testing.T) {
	for _, c := range []struct{ took, want time.Duration }{
		{0, time.Second},
		{10 * time.Millisecond, time.Second},
		{50 * time.Millisecond, time.Second},
		{200 * time.Millisecond, 4 * time.Second},
		{2 * time.Second, 40 * time.Second},
		{10 * time.Second, time.Minute},
	} {
		if got := resubmitScanWait(c.took); got != c.want {
			t.Errorf("scan took %s: next after %s, want %s", c.took, got, c.want)
		}
	}
}

// TestDueResubmitsReusesASlowScanLonger: after a scan whose back-off is 5 s
// the answer is reused 2 s later (the table, empty, would say otherwise);
// after one with the usual second it is not.
func TestDueResubmitsReusesASlowScanLonger(t *testing.T) {
	ctx := context.Background()
	d := mustNew(t, storetest.SQLite(t), nil, nil, Options{})
	now := time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		wait time.Duration
		want []string
	}{{5 * time.Second, []string{"m"}}, {time.Second, nil}} {
		d.resubmitScannedAt, d.resubmitScanWait, d.resubmitMerchants = now.Add(-2*time.Second), c.wait, map[string]bool{"m": true}
		got, err := d.dueResubmits(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, c.want) {
			t.Errorf("back-off %s, 2 s later: merchants %v, want %v", c.wait, keys, c.want)
		}
	}
}
