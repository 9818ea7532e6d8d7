-- +goose Up
-- One unique index instead of two; see the MySQL migration for why.
DROP INDEX uq_outbox_event_id;
DROP INDEX ix_outbox_withdrawal;
CREATE UNIQUE INDEX uq_outbox_subject ON outbox (withdrawal_id, version, event_id);

-- +goose Down
DROP INDEX uq_outbox_subject;
CREATE UNIQUE INDEX uq_outbox_event_id ON outbox (event_id);
CREATE INDEX ix_outbox_withdrawal ON outbox (withdrawal_id, id);
