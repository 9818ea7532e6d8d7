-- +goose Up
-- outbox.published_at becomes NOT NULL, with the epoch (store.NotPublished)
-- meaning "not yet acknowledged by the broker"; see the MySQL migration for
-- why. SQLite cannot change a column's nullability, so the table is rebuilt.
-- The default is the text the SQLite driver writes for store.NotPublished,
-- so rows that take the default compare equal to the bound Go value.
CREATE TABLE outbox_new (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       TEXT    NOT NULL,
    withdrawal_id  TEXT    NOT NULL DEFAULT '',
    event_key      TEXT    NOT NULL,
    lane           INTEGER NOT NULL,
    event_type     TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    payload        BLOB    NOT NULL,
    created_at     DATETIME NOT NULL,
    published_at   DATETIME NOT NULL DEFAULT '1970-01-01 00:00:00+00:00'
);
INSERT INTO outbox_new (id, event_id, withdrawal_id, event_key, lane, event_type, version, payload, created_at, published_at)
    SELECT id, event_id, withdrawal_id, event_key, lane, event_type, version, payload, created_at,
           COALESCE(published_at, '1970-01-01 00:00:00+00:00')
    FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE UNIQUE INDEX uq_outbox_event_id ON outbox (event_id);
CREATE INDEX ix_outbox_pending ON outbox (published_at, lane, id);
CREATE INDEX ix_outbox_withdrawal ON outbox (withdrawal_id, id);

-- +goose Down
CREATE TABLE outbox_old (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       TEXT    NOT NULL,
    withdrawal_id  TEXT    NOT NULL DEFAULT '',
    event_key      TEXT    NOT NULL,
    lane           INTEGER NOT NULL,
    event_type     TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    payload        BLOB    NOT NULL,
    created_at     DATETIME NOT NULL,
    published_at   DATETIME NULL
);
INSERT INTO outbox_old (id, event_id, withdrawal_id, event_key, lane, event_type, version, payload, created_at, published_at)
    SELECT id, event_id, withdrawal_id, event_key, lane, event_type, version, payload, created_at,
           CASE WHEN published_at = '1970-01-01 00:00:00+00:00' THEN NULL ELSE published_at END
    FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_old RENAME TO outbox;
CREATE UNIQUE INDEX uq_outbox_event_id ON outbox (event_id);
CREATE INDEX ix_outbox_pending ON outbox (published_at, lane, id);
CREATE INDEX ix_outbox_withdrawal ON outbox (withdrawal_id, id);
