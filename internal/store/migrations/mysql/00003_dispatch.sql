-- +goose Up
-- The state a claim (SUBMITTING) came from, so that releasing it without a
-- change (a 429, a query that settles nothing) emits no event.
ALTER TABLE withdrawals ADD COLUMN claimed_from VARCHAR(16) NOT NULL DEFAULT '';
-- When the request first left for the provider: the providers' "a query
-- finding nothing proves nothing before ..." rules count from here.
ALTER TABLE withdrawals ADD COLUMN first_sent_at DATETIME(6) NULL;
-- Set by the poller when the provider asks for the identical request again
-- (WeChat INIT: 需要重入驱动到受理成功); the dispatcher re-sends it under the
-- same per-merchant cap as any submission. No index of its own: such rows
-- are due SUBMITTED rows, a short range of ix_withdrawals_due, and every
-- index costs the intake an insert per command.
ALTER TABLE withdrawals ADD COLUMN resubmit_requested TINYINT(1) NOT NULL DEFAULT 0;
-- Due work per merchant, read with a loose index scan (one dive per
-- merchant); also the per-merchant count of SUBMITTING rows.
CREATE INDEX ix_withdrawals_merchant_due ON withdrawals (state, merchant_key, next_attempt_at);

-- One row per merchant: the lock that serialises claims for a merchant
-- across all dispatcher instances, so the in-flight cap holds globally.
CREATE TABLE dispatch_merchants (
    merchant_key     VARCHAR(128) NOT NULL,
    last_claimed_at  DATETIME(6)  NULL,
    PRIMARY KEY (merchant_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE dispatch_merchants;
DROP INDEX ix_withdrawals_merchant_due ON withdrawals;
ALTER TABLE withdrawals DROP COLUMN resubmit_requested;
ALTER TABLE withdrawals DROP COLUMN first_sent_at;
ALTER TABLE withdrawals DROP COLUMN claimed_from;
