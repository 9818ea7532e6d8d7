-- +goose Up
-- Ordering lanes of the outbox relay (package outbox): one row per lane,
-- leased to one relay instance at a time. owner is '' and lease_expires_at
-- NULL when the lane is free; an expired lease is free too. Times are the
-- database's UTC clock, so relay instances never compare their own clocks.
CREATE TABLE outbox_lanes (
    lane             SMALLINT    NOT NULL,
    owner            VARCHAR(64) NOT NULL DEFAULT '',
    lease_expires_at DATETIME(6) NULL,
    PRIMARY KEY (lane)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- outbox.Lanes = 64 lanes (the relay also inserts any that are missing).
INSERT INTO outbox_lanes (lane) VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9),(10),(11),(12),(13),(14),(15),(16),(17),(18),(19),(20),(21),(22),(23),(24),(25),(26),(27),(28),(29),(30),(31),(32),(33),(34),(35),(36),(37),(38),(39),(40),(41),(42),(43),(44),(45),(46),(47),(48),(49),(50),(51),(52),(53),(54),(55),(56),(57),(58),(59),(60),(61),(62),(63);

-- Live relay instances (heartbeats), so that a newcomer holding no lane yet
-- still counts when the others compute their fair share of lanes.
CREATE TABLE outbox_relays (
    owner      VARCHAR(64) NOT NULL,
    expires_at DATETIME(6) NOT NULL,
    PRIMARY KEY (owner)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE outbox_relays;
DROP TABLE outbox_lanes;
