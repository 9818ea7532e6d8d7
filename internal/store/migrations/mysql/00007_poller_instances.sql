-- +goose Up
-- One row per running poller instance, refreshed on every sweep: the
-- instances divide each provider account's query rate between them, so the
-- total stays within the provider's limit however many run.
CREATE TABLE poller_instances (
    instance  VARCHAR(96) NOT NULL,
    seen_at   DATETIME(6) NOT NULL,
    PRIMARY KEY (instance)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE poller_instances;
