-- +goose Up
-- The SQLite schema mirrors mysql/00001_init.sql for the single-process
-- devstack. Times are stored by the driver as UTC text.
CREATE TABLE withdrawals (
    id                      TEXT    NOT NULL PRIMARY KEY,
    channel                 TEXT    NOT NULL,
    account                 TEXT    NOT NULL,
    out_request_no          TEXT    NOT NULL,
    merchant_key            TEXT    NOT NULL,
    amount                  INTEGER NOT NULL,
    params_hash             TEXT    NOT NULL,
    params                  BLOB    NOT NULL,
    sensitive_key_id        TEXT    NOT NULL DEFAULT '',
    sensitive_data          BLOB    NULL,
    state                   TEXT    NOT NULL,
    version                 INTEGER NOT NULL,
    provider_status         TEXT    NOT NULL DEFAULT '',
    provider_ref            TEXT    NOT NULL DEFAULT '',
    reason_code             TEXT    NOT NULL DEFAULT '',
    reason                  TEXT    NOT NULL DEFAULT '',
    submissions             INTEGER NOT NULL DEFAULT 0,
    next_attempt_at         DATETIME NOT NULL,
    lease_owner             TEXT    NOT NULL DEFAULT '',
    lease_expires_at        DATETIME NULL,
    provider_request        BLOB    NULL,
    provider_request_serial TEXT    NOT NULL DEFAULT '',
    submitted_at            DATETIME NULL,
    final_at                DATETIME NULL,
    created_at              DATETIME NOT NULL,
    updated_at              DATETIME NOT NULL
);
CREATE UNIQUE INDEX uq_withdrawals_key ON withdrawals (out_request_no, channel, account);
CREATE INDEX ix_withdrawals_due ON withdrawals (state, next_attempt_at);

CREATE TABLE outbox (
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
CREATE UNIQUE INDEX uq_outbox_event_id ON outbox (event_id);
CREATE INDEX ix_outbox_pending ON outbox (published_at, lane, id);
CREATE INDEX ix_outbox_withdrawal ON outbox (withdrawal_id, id);

CREATE TABLE withdrawal_attempts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    withdrawal_id  TEXT    NOT NULL,
    operation      TEXT    NOT NULL,
    started_at     DATETIME NOT NULL,
    latency_us     INTEGER NOT NULL,
    http_status    INTEGER NOT NULL DEFAULT 0,
    provider_code  TEXT    NOT NULL DEFAULT '',
    outcome        TEXT    NOT NULL,
    instance       TEXT    NOT NULL,
    error          TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX ix_attempts_withdrawal ON withdrawal_attempts (withdrawal_id, id);

-- +goose Down
DROP TABLE withdrawal_attempts;
DROP TABLE outbox;
DROP TABLE withdrawals;
