-- +goose Up
-- See the MySQL migration of the same number.
CREATE TABLE poller_instances (
    instance  TEXT     NOT NULL PRIMARY KEY,
    seen_at   DATETIME NOT NULL
);

-- +goose Down
DROP TABLE poller_instances;
