-- +goose Up
-- See the MySQL migration of the same number.
ALTER TABLE dispatch_merchants DROP COLUMN last_claimed_at;

-- +goose Down
ALTER TABLE dispatch_merchants ADD COLUMN last_claimed_at DATETIME NULL;
