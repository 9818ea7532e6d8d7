-- +goose Up
-- Daily reconciliation against the providers' fund-flow bills (package
-- recon, docs/reconciliation.md). Bill dates are Beijing dates, YYYY-MM-DD.

-- One row per bill date and bill source (an account's bill of one fund
-- account, or of its sub-merchants): whether it was read to the end.
CREATE TABLE recon_sources (
    bill_date    CHAR(10)     NOT NULL,
    source       VARCHAR(160) NOT NULL,
    status       VARCHAR(16)  NOT NULL,
    attempts     INT          NOT NULL DEFAULT 0,
    last_error   VARCHAR(512) NOT NULL DEFAULT '',
    bill_lines   BIGINT       NOT NULL DEFAULT 0,
    other_lines  BIGINT       NOT NULL DEFAULT 0,
    created_at   DATETIME(6)  NOT NULL,
    updated_at   DATETIME(6)  NOT NULL,
    done_at      DATETIME(6)  NULL,
    PRIMARY KEY (bill_date, source)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row per withdrawal line of a bill (item_key: the line's flow id) and
-- per withdrawal of ours missing from the day's bills (item_key "ours:" +
-- withdrawal id). The unique key makes a re-run insert nothing new.
CREATE TABLE recon_items (
    id             BIGINT       NOT NULL AUTO_INCREMENT,
    bill_date      CHAR(10)     NOT NULL,
    source         VARCHAR(160) NOT NULL,
    item_key       VARCHAR(160) NOT NULL,
    outcome        VARCHAR(24)  NOT NULL,
    line_kind      VARCHAR(16)  NOT NULL DEFAULT '',
    withdrawal_id  CHAR(36)     NOT NULL DEFAULT '',
    out_request_no VARCHAR(64)  NOT NULL DEFAULT '',
    provider_ref   VARCHAR(128) NOT NULL DEFAULT '',
    bill_amount    BIGINT       NOT NULL DEFAULT 0,
    our_amount     BIGINT       NOT NULL DEFAULT 0,
    our_state      VARCHAR(16)  NOT NULL DEFAULT '',
    booked_at      VARCHAR(32)  NOT NULL DEFAULT '',
    note           VARCHAR(255) NOT NULL DEFAULT '',
    created_at     DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_recon_items (bill_date, source, item_key),
    KEY ix_recon_items_withdrawal (withdrawal_id),
    KEY ix_recon_items_outcome (bill_date, outcome)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The day's summary for finance: counts and sums (fen) per outcome.
CREATE TABLE recon_days (
    bill_date              CHAR(10)    NOT NULL,
    status                 VARCHAR(16) NOT NULL,
    sources_total          INT         NOT NULL DEFAULT 0,
    sources_done           INT         NOT NULL DEFAULT 0,
    matched_count          BIGINT      NOT NULL DEFAULT 0,
    matched_fen            BIGINT      NOT NULL DEFAULT 0,
    not_ours_count         BIGINT      NOT NULL DEFAULT 0,
    not_ours_fen           BIGINT      NOT NULL DEFAULT 0,
    missing_count          BIGINT      NOT NULL DEFAULT 0,
    missing_fen            BIGINT      NOT NULL DEFAULT 0,
    amount_mismatch_count  BIGINT      NOT NULL DEFAULT 0,
    amount_mismatch_fen    BIGINT      NOT NULL DEFAULT 0,
    refund_count           BIGINT      NOT NULL DEFAULT 0,
    refund_fen             BIGINT      NOT NULL DEFAULT 0,
    bill_lines             BIGINT      NOT NULL DEFAULT 0,
    other_lines            BIGINT      NOT NULL DEFAULT 0,
    updated_at             DATETIME(6) NOT NULL,
    PRIMARY KEY (bill_date)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;


-- +goose Down
DROP TABLE recon_days;
DROP TABLE recon_items;
DROP TABLE recon_sources;
