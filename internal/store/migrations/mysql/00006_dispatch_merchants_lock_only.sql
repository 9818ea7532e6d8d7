-- +goose Up
-- dispatch_merchants is a lock row per merchant and nothing else. Every
-- claim used to stamp last_claimed_at on the merchants it served, a write
-- nobody read (fairness is kept in each instance's memory) that cost the
-- dispatcher one UPDATE per claim round.
ALTER TABLE dispatch_merchants DROP COLUMN last_claimed_at;

-- +goose Down
ALTER TABLE dispatch_merchants ADD COLUMN last_claimed_at DATETIME(6) NULL;
