-- +goose Up
-- See the MySQL migration of the same number.
CREATE TABLE recon_sources (
    bill_date    TEXT     NOT NULL,
    source       TEXT     NOT NULL,
    status       TEXT     NOT NULL,
    attempts     INTEGER  NOT NULL DEFAULT 0,
    last_error   TEXT     NOT NULL DEFAULT '',
    bill_lines   INTEGER  NOT NULL DEFAULT 0,
    other_lines  INTEGER  NOT NULL DEFAULT 0,
    created_at   DATETIME NOT NULL,
    updated_at   DATETIME NOT NULL,
    done_at      DATETIME NULL,
    PRIMARY KEY (bill_date, source)
);

CREATE TABLE recon_items (
    id             INTEGER  PRIMARY KEY AUTOINCREMENT,
    bill_date      TEXT     NOT NULL,
    source         TEXT     NOT NULL,
    item_key       TEXT     NOT NULL,
    outcome        TEXT     NOT NULL,
    line_kind      TEXT     NOT NULL DEFAULT '',
    withdrawal_id  TEXT     NOT NULL DEFAULT '',
    out_request_no TEXT     NOT NULL DEFAULT '',
    provider_ref   TEXT     NOT NULL DEFAULT '',
    bill_amount    INTEGER  NOT NULL DEFAULT 0,
    our_amount     INTEGER  NOT NULL DEFAULT 0,
    our_state      TEXT     NOT NULL DEFAULT '',
    booked_at      TEXT     NOT NULL DEFAULT '',
    note           TEXT     NOT NULL DEFAULT '',
    created_at     DATETIME NOT NULL
);
CREATE UNIQUE INDEX uq_recon_items ON recon_items (bill_date, source, item_key);
CREATE INDEX ix_recon_items_withdrawal ON recon_items (withdrawal_id);
CREATE INDEX ix_recon_items_outcome ON recon_items (bill_date, outcome);

CREATE TABLE recon_days (
    bill_date              TEXT     NOT NULL PRIMARY KEY,
    status                 TEXT     NOT NULL,
    sources_total          INTEGER  NOT NULL DEFAULT 0,
    sources_done           INTEGER  NOT NULL DEFAULT 0,
    matched_count          INTEGER  NOT NULL DEFAULT 0,
    matched_fen            INTEGER  NOT NULL DEFAULT 0,
    not_ours_count         INTEGER  NOT NULL DEFAULT 0,
    not_ours_fen           INTEGER  NOT NULL DEFAULT 0,
    missing_count          INTEGER  NOT NULL DEFAULT 0,
    missing_fen            INTEGER  NOT NULL DEFAULT 0,
    amount_mismatch_count  INTEGER  NOT NULL DEFAULT 0,
    amount_mismatch_fen    INTEGER  NOT NULL DEFAULT 0,
    refund_count           INTEGER  NOT NULL DEFAULT 0,
    refund_fen             INTEGER  NOT NULL DEFAULT 0,
    bill_lines             INTEGER  NOT NULL DEFAULT 0,
    other_lines            INTEGER  NOT NULL DEFAULT 0,
    updated_at             DATETIME NOT NULL
);


-- +goose Down
DROP TABLE recon_days;
DROP TABLE recon_items;
DROP TABLE recon_sources;
