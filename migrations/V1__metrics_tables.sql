-- The seed service's tables, with the columns its consumers select by name
-- (timestamp, value; disk: timestamp, used, free, percent), plus `host` so one database
-- serves a fleet. (host, timestamp) is unique: a retried write never duplicates a window.
-- IF NOT EXISTS: a database the Python service already filled keeps its tables.

CREATE TABLE IF NOT EXISTS metrics_cpu (
    timestamp timestamptz NOT NULL,
    value double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics_ram (
    timestamp timestamptz NOT NULL,
    value double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics_gpu (
    timestamp timestamptz NOT NULL,
    value double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics_temperature (
    timestamp timestamptz NOT NULL,
    value double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics_disk (
    timestamp timestamptz NOT NULL,
    used bigint NOT NULL,
    free bigint NOT NULL,
    percent double precision NOT NULL
);

ALTER TABLE metrics_cpu ADD COLUMN IF NOT EXISTS host text NOT NULL DEFAULT '';
ALTER TABLE metrics_ram ADD COLUMN IF NOT EXISTS host text NOT NULL DEFAULT '';
ALTER TABLE metrics_gpu ADD COLUMN IF NOT EXISTS host text NOT NULL DEFAULT '';
ALTER TABLE metrics_temperature ADD COLUMN IF NOT EXISTS host text NOT NULL DEFAULT '';
ALTER TABLE metrics_disk ADD COLUMN IF NOT EXISTS host text NOT NULL DEFAULT '';

-- The unique key doubles as the index for "one host, a time range"; the timestamp index
-- serves consumers that query by time alone, and retention.
CREATE UNIQUE INDEX IF NOT EXISTS metrics_cpu_host_timestamp ON metrics_cpu (host, timestamp);
CREATE UNIQUE INDEX IF NOT EXISTS metrics_ram_host_timestamp ON metrics_ram (host, timestamp);
CREATE UNIQUE INDEX IF NOT EXISTS metrics_gpu_host_timestamp ON metrics_gpu (host, timestamp);
CREATE UNIQUE INDEX IF NOT EXISTS metrics_temperature_host_timestamp ON metrics_temperature (host, timestamp);
CREATE UNIQUE INDEX IF NOT EXISTS metrics_disk_host_timestamp ON metrics_disk (host, timestamp);
CREATE INDEX IF NOT EXISTS metrics_cpu_timestamp ON metrics_cpu (timestamp);
CREATE INDEX IF NOT EXISTS metrics_ram_timestamp ON metrics_ram (timestamp);
CREATE INDEX IF NOT EXISTS metrics_gpu_timestamp ON metrics_gpu (timestamp);
CREATE INDEX IF NOT EXISTS metrics_temperature_timestamp ON metrics_temperature (timestamp);
CREATE INDEX IF NOT EXISTS metrics_disk_timestamp ON metrics_disk (timestamp);
