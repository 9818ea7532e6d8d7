-- +goose Up
-- See the MySQL migration of the same number.
CREATE INDEX ix_withdrawals_merchant_id ON withdrawals (merchant_key, id);

-- +goose Down
DROP INDEX ix_withdrawals_merchant_id;
