-- +goose Up
-- outbox.published_at becomes NOT NULL, with 1970-01-01 00:00:00 (store.NotPublished)
-- meaning "not yet acknowledged by the broker".
--
-- Why: InnoDB stores a NULL as a bit and no bytes, so NULL -> timestamp grew
-- every row and made each "mark published" a delete + re-insert of the whole
-- record (payload included) in the clustered index. A fixed-size value is
-- overwritten in place: the relay's UPDATE costs a third (measured in
-- docs/relay.md, "The published mark"). The pending index keeps its shape, so
-- claims still read each lane's unpublished rows in id order, late-committed
-- ids included.
--
-- Run with the relays stopped (`consumer migrate` runs before the binaries
-- start): a row inserted with NULL between the two statements would fail the
-- ALTER in strict mode, and nothing would be lost.
UPDATE outbox SET published_at = '1970-01-01 00:00:00' WHERE published_at IS NULL;
ALTER TABLE outbox MODIFY published_at DATETIME(6) NOT NULL DEFAULT '1970-01-01 00:00:00';

-- +goose Down
ALTER TABLE outbox MODIFY published_at DATETIME(6) NULL DEFAULT NULL;
UPDATE outbox SET published_at = NULL WHERE published_at = '1970-01-01 00:00:00';
