-- +goose Up
-- One unique index instead of two on the outbox, whose every index costs the
-- intake an insert per command (about 15% of its throughput each, measured
-- in docs/intake.md):
--  * uq_outbox_event_id stopped a redelivered rejection from being stored
--    twice. A rejection has withdrawal_id '' and a fixed version, so the
--    same event id is the same (withdrawal_id, version, event_id) and still
--    collides.
--  * ix_outbox_withdrawal served the admin API's "events of a withdrawal";
--    (withdrawal_id, ...) is the new index's prefix, in version order.
-- A withdrawal event's id is a fresh UUIDv7, unique by itself; the relay and
-- the consumers never look a row up by event_id.
ALTER TABLE outbox
    DROP INDEX uq_outbox_event_id,
    DROP INDEX ix_outbox_withdrawal,
    ADD UNIQUE KEY uq_outbox_subject (withdrawal_id, version, event_id);

-- +goose Down
ALTER TABLE outbox
    DROP INDEX uq_outbox_subject,
    ADD UNIQUE KEY uq_outbox_event_id (event_id),
    ADD KEY ix_outbox_withdrawal (withdrawal_id, id);
