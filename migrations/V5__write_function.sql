-- metrics_write: a batch of one host's windows into the five tables, rows already there
-- skipped (ON CONFLICT DO NOTHING on the unique (host, "timestamp") key, so a batch sent
-- again after a lost reply is kept once). Returns how many rows it inserted.
--
-- The arrays are parallel, one element per window; a NULL mean (or disk percent) means
-- that metric had no reading in that window, and it gets no row.
--
-- Why a function: the collector calls it as one statement outside any BEGIN, so a batch
-- is one transaction and one round trip, and the five INSERTs' plans stay cached in the
-- server connection from one call to the next. Through PgBouncer in transaction mode
-- (1.18: no prepared statements across transactions) a client's own statement is parsed
-- and planned on every call; a PL/pgSQL function's statements are not.
--
-- lock_timeout: a batch that waits on a lock (an operator's LOCK TABLE, a long DDL) gives
-- up after 5 s; the collector keeps its windows and tries again.
CREATE OR REPLACE FUNCTION metrics_write(
    p_host text,
    p_at timestamptz[],
    p_cpu float8[], p_cpu_min float8[], p_cpu_max float8[],
    p_ram float8[], p_ram_min float8[], p_ram_max float8[],
    p_gpu float8[], p_gpu_min float8[], p_gpu_max float8[],
    p_temperature float8[], p_temperature_min float8[], p_temperature_max float8[],
    p_used int8[], p_free int8[], p_percent float8[]
) RETURNS bigint
LANGUAGE plpgsql
SET lock_timeout = '5s'
AS $fn$
DECLARE
    n bigint;
    total bigint := 0;
BEGIN
    INSERT INTO metrics_cpu (host, "timestamp", value, value_min, value_max)
    SELECT p_host, w.at, w.v, w.lo, w.hi
      FROM unnest(p_at, p_cpu, p_cpu_min, p_cpu_max) AS w(at, v, lo, hi)
     WHERE w.v IS NOT NULL
    ON CONFLICT (host, "timestamp") DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    total := total + n;

    INSERT INTO metrics_ram (host, "timestamp", value, value_min, value_max)
    SELECT p_host, w.at, w.v, w.lo, w.hi
      FROM unnest(p_at, p_ram, p_ram_min, p_ram_max) AS w(at, v, lo, hi)
     WHERE w.v IS NOT NULL
    ON CONFLICT (host, "timestamp") DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    total := total + n;

    INSERT INTO metrics_gpu (host, "timestamp", value, value_min, value_max)
    SELECT p_host, w.at, w.v, w.lo, w.hi
      FROM unnest(p_at, p_gpu, p_gpu_min, p_gpu_max) AS w(at, v, lo, hi)
     WHERE w.v IS NOT NULL
    ON CONFLICT (host, "timestamp") DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    total := total + n;

    INSERT INTO metrics_temperature (host, "timestamp", value, value_min, value_max)
    SELECT p_host, w.at, w.v, w.lo, w.hi
      FROM unnest(p_at, p_temperature, p_temperature_min, p_temperature_max)
           AS w(at, v, lo, hi)
     WHERE w.v IS NOT NULL
    ON CONFLICT (host, "timestamp") DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    total := total + n;

    INSERT INTO metrics_disk (host, "timestamp", used, free, percent)
    SELECT p_host, w.at, w.used, w.free, w.percent
      FROM unnest(p_at, p_used, p_free, p_percent) AS w(at, used, free, percent)
     WHERE w.percent IS NOT NULL
    ON CONFLICT (host, "timestamp") DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    total := total + n;

    RETURN total;
END
$fn$;
