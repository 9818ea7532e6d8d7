package dispatch

import (
	"slices"
	"testing"
	"time"
)

func TestDueCacheReuseAndExpiry(t *testing.T) {
	var c dueCache
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, _, ok := c.snapshot(t0); ok {
		t.Fatal("an empty cache was reused")
	}
	c.replace([]string{"a", "b"}, t0)
	got, _, ok := c.snapshot(t0.Add(dueScanMaxAge - time.Millisecond))
	slices.Sort(got)
	if !ok || !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("fresh list = %v, %v", got, ok)
	}
	if _, _, ok := c.snapshot(t0.Add(dueScanMaxAge)); ok {
		t.Error("a list dueScanMaxAge old was reused")
	}
	if _, _, ok := c.snapshot(t0.Add(-time.Second)); ok {
		t.Error("a list from the future (clock stepped back) was reused")
	}
}

// TestDueCacheDropKeepsLaterAdditions: a claim that read the list before a
// merchant was announced again must not drop it, or the new work would wait
// for the next scan.
func TestDueCacheDropKeepsLaterAdditions(t *testing.T) {
	var c dueCache
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c.add([]string{"x"}) // before any scan: the scan will find it
	if _, _, ok := c.snapshot(t0); ok {
		t.Fatal("an add created a list without a scan")
	}
	c.replace([]string{"a", "b", "c"}, t0)
	_, gen, _ := c.snapshot(t0)
	c.add([]string{"b", "d"}) // the intake stored more for b, and a new d
	c.drop([]string{"a", "b", "d"}, gen)
	got, _, ok := c.snapshot(t0)
	slices.Sort(got)
	if !ok || !slices.Equal(got, []string{"b", "c", "d"}) {
		t.Errorf("after drop = %v, want [b c d]", got)
	}
	c.drop([]string{"b", "c", "d"}, gen+1)
	if _, _, ok := c.snapshot(t0); ok {
		t.Error("an emptied list was reused: the next claim must scan")
	}
}
