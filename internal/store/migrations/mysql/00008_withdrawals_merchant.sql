-- +goose Up
-- A merchant's withdrawals newest first, for the operator console's search
-- ("where is this merchant's money?") with keyset paging on (merchant_key,
-- id): ids are UUIDv7, so id order is creation order and a time range is an
-- id range. The existing merchant index leads with state and orders by
-- next_attempt_at, which cannot page a merchant's rows of every state in one
-- order. It costs the intake one more index insert per command; the state
-- searches use ix_withdrawals_due / ix_withdrawals_merchant_due instead of
-- an index of their own.
CREATE INDEX ix_withdrawals_merchant_id ON withdrawals (merchant_key, id);

-- +goose Down
DROP INDEX ix_withdrawals_merchant_id ON withdrawals;
