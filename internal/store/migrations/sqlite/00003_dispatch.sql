-- +goose Up
ALTER TABLE withdrawals ADD COLUMN claimed_from TEXT NOT NULL DEFAULT '';
ALTER TABLE withdrawals ADD COLUMN first_sent_at DATETIME NULL;
ALTER TABLE withdrawals ADD COLUMN resubmit_requested INTEGER NOT NULL DEFAULT 0;
CREATE INDEX ix_withdrawals_merchant_due ON withdrawals (state, merchant_key, next_attempt_at);
CREATE TABLE dispatch_merchants (
    merchant_key     TEXT NOT NULL PRIMARY KEY,
    last_claimed_at  DATETIME NULL
);

-- +goose Down
DROP TABLE dispatch_merchants;
DROP INDEX ix_withdrawals_merchant_due;
ALTER TABLE withdrawals DROP COLUMN resubmit_requested;
ALTER TABLE withdrawals DROP COLUMN first_sent_at;
ALTER TABLE withdrawals DROP COLUMN claimed_from;
