-- +goose Up
-- Mirrors mysql/00002_outbox_lanes.sql: the relay's lane leases.
CREATE TABLE outbox_lanes (
    lane             INTEGER NOT NULL PRIMARY KEY,
    owner            TEXT    NOT NULL DEFAULT '',
    lease_expires_at DATETIME NULL
);

INSERT INTO outbox_lanes (lane) VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9),(10),(11),(12),(13),(14),(15),(16),(17),(18),(19),(20),(21),(22),(23),(24),(25),(26),(27),(28),(29),(30),(31),(32),(33),(34),(35),(36),(37),(38),(39),(40),(41),(42),(43),(44),(45),(46),(47),(48),(49),(50),(51),(52),(53),(54),(55),(56),(57),(58),(59),(60),(61),(62),(63);

CREATE TABLE outbox_relays (
    owner      TEXT     NOT NULL PRIMARY KEY,
    expires_at DATETIME NOT NULL
);

-- +goose Down
DROP TABLE outbox_relays;
DROP TABLE outbox_lanes;
