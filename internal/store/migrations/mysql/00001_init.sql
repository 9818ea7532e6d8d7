-- +goose Up
-- One row per withdrawal. Times are UTC, microsecond precision.
CREATE TABLE withdrawals (
    id                      CHAR(36)     NOT NULL,
    channel                 VARCHAR(32)  NOT NULL,
    account                 VARCHAR(64)  NOT NULL,
    out_request_no          VARCHAR(64)  NOT NULL,
    merchant_key            VARCHAR(128) NOT NULL,
    amount                  BIGINT       NOT NULL,
    params_hash             CHAR(64)     NOT NULL,
    -- The command as received, minus payee_info (which is in sensitive_data).
    params                  MEDIUMBLOB   NOT NULL,
    sensitive_key_id        VARCHAR(32)  NOT NULL DEFAULT '',
    sensitive_data          BLOB         NULL,
    state                   VARCHAR(16)  NOT NULL,
    version                 INT          NOT NULL,
    provider_status         VARCHAR(32)  NOT NULL DEFAULT '',
    provider_ref            VARCHAR(128) NOT NULL DEFAULT '',
    reason_code             VARCHAR(64)  NOT NULL DEFAULT '',
    reason                  VARCHAR(512) NOT NULL DEFAULT '',
    submissions             INT          NOT NULL DEFAULT 0,
    -- When the dispatcher or the poller should look at this row next.
    next_attempt_at         DATETIME(6)  NOT NULL,
    lease_owner             VARCHAR(64)  NOT NULL DEFAULT '',
    lease_expires_at        DATETIME(6)  NULL,
    -- The exact bytes first sent, so a re-submission is byte-identical.
    provider_request        MEDIUMBLOB   NULL,
    provider_request_serial VARCHAR(128) NOT NULL DEFAULT '',
    submitted_at            DATETIME(6)  NULL,
    final_at                DATETIME(6)  NULL,
    created_at              DATETIME(6)  NOT NULL,
    updated_at              DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    -- The idempotency key; out_request_no first so intake can look a batch
    -- up with out_request_no IN (...).
    UNIQUE KEY uq_withdrawals_key (out_request_no, channel, account),
    -- Due rows of a state: the poller's sweep, and the lease sweep (a
    -- SUBMITTING row is due when its lease expires). Every index costs the
    -- intake an insert per command, so there are as few as the queries need.
    KEY ix_withdrawals_due (state, next_attempt_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Events waiting for (or already through) the relay to Kafka.
CREATE TABLE outbox (
    id             BIGINT       NOT NULL AUTO_INCREMENT,
    event_id       CHAR(36)     NOT NULL,
    withdrawal_id  CHAR(36)     NOT NULL DEFAULT '',
    -- The Kafka message key: the withdrawal id (rejections: out_request_no).
    event_key      VARCHAR(64)  NOT NULL,
    -- Ordering lane: a hash of event_key, so one relay owns all of a key's events.
    lane           SMALLINT     NOT NULL,
    event_type     VARCHAR(32)  NOT NULL,
    version        INT          NOT NULL,
    payload        MEDIUMBLOB   NOT NULL,
    created_at     DATETIME(6)  NOT NULL,
    published_at   DATETIME(6)  NULL,
    PRIMARY KEY (id),
    -- A redelivered rejection has the same event id and is stored once.
    UNIQUE KEY uq_outbox_event_id (event_id),
    KEY ix_outbox_pending (published_at, lane, id),
    -- The admin API lists a withdrawal's events.
    KEY ix_outbox_withdrawal (withdrawal_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Audit of every provider call. Never holds a sensitive value.
CREATE TABLE withdrawal_attempts (
    id             BIGINT       NOT NULL AUTO_INCREMENT,
    withdrawal_id  CHAR(36)     NOT NULL,
    operation      VARCHAR(16)  NOT NULL,
    started_at     DATETIME(6)  NOT NULL,
    latency_us     BIGINT       NOT NULL,
    http_status    INT          NOT NULL DEFAULT 0,
    provider_code  VARCHAR(64)  NOT NULL DEFAULT '',
    outcome        VARCHAR(16)  NOT NULL,
    instance       VARCHAR(64)  NOT NULL,
    error          VARCHAR(512) NOT NULL DEFAULT '',
    PRIMARY KEY (id),
    KEY ix_attempts_withdrawal (withdrawal_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE withdrawal_attempts;
DROP TABLE outbox;
DROP TABLE withdrawals;
