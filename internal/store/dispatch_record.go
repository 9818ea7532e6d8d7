package store

import (
	"context"
	"fmt"
	"time"
)

// AddSubmissions counts n more sends of a withdrawal, whatever its state and
// lease: the provider answer of a claim that was lost meanwhile (its lease
// expired) is not applied, but the sends it made still happened.
func AddSubmissions(ctx context.Context, ex Executor, id string, n int, now time.Time) error {
	if _, err := execRaw(ctx, ex, "UPDATE withdrawals SET submissions = submissions + ?, updated_at = ? WHERE id = ?", n, now, id); err != nil {
		return fmt.Errorf("count %d sends of %s: %w", n, id, err)
	}
	return nil
}
