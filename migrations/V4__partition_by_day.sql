-- One partition per UTC day (PARTITION BY RANGE ("timestamp")), plus a DEFAULT partition
-- for what no day holds (a clock far off, a backlog older than the days made). Retention
-- drops whole days instead of deleting rows, so a fleet's tables never bloat.
--
-- The collector runs every migration in one transaction under pg_advisory_xact_lock
-- (safe through PgBouncer in transaction mode, and when a fleet starts at once).
--
-- Existing tables (this service's, or the original service's that V1-V3 took over) are
-- turned into partitioned ones in place: renamed aside, a partitioned table made like
-- them (same columns, defaults and order, so `SELECT *` and the original's extra
-- `created_at` keep working), every row copied and counted, views that read them
-- re-pointed with CREATE OR REPLACE (they keep their owner, grants and dependants),
-- grants copied, and the old table dropped. All or nothing.
--
-- Partition names: <table>_pYYYYMMDD (the UTC day) and <table>_default. The functions
-- below are what the collector calls to keep days made ahead and to drop expired ones;
-- an operator may call them too.

-- The day partition of `parent` holding `day` (UTC), made if missing. Rows of that day
-- already in the DEFAULT partition move into it, so making a day never fails.
CREATE OR REPLACE FUNCTION metrics_make_day(parent text, day date) RETURNS boolean
LANGUAGE plpgsql AS $fn$
DECLARE
    part text := parent || '_p' || to_char(day, 'YYYYMMDD');
    lo timestamptz := day::timestamp AT TIME ZONE 'UTC';
    hi timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
    IF to_regclass(quote_ident(part)) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- Collectors making the same day at once take turns ("mcpa" in ASCII).
    PERFORM pg_advisory_xact_lock(1835233377, hashtext(part));
    IF to_regclass(quote_ident(part)) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING GENERATED)',
                   part, parent);
    IF to_regclass(quote_ident(parent || '_default')) IS NOT NULL THEN
        EXECUTE format('WITH moved AS (DELETE FROM %I WHERE "timestamp" >= $1 AND "timestamp" < $2
                                       RETURNING *)
                        INSERT INTO %I SELECT * FROM moved',
                       parent || '_default', part) USING lo, hi;
    END IF;
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   parent, part, lo, hi);
    RETURN true;
END
$fn$;

-- The DEFAULT partition of `parent`, made if missing.
CREATE OR REPLACE FUNCTION metrics_make_default(parent text) RETURNS boolean
LANGUAGE plpgsql AS $fn$
BEGIN
    IF to_regclass(quote_ident(parent || '_default')) IS NOT NULL THEN
        RETURN false;
    END IF;
    PERFORM pg_advisory_xact_lock(1835233377, hashtext(parent || '_default'));
    IF to_regclass(quote_ident(parent || '_default')) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', parent || '_default', parent);
    RETURN true;
END
$fn$;

-- Every table's DEFAULT partition and its partitions for `days`; returns how many were
-- made. The collector calls it with yesterday to 4 days ahead, and with a batch's days
-- when a write found no partition (SQLSTATE 23514).
CREATE OR REPLACE FUNCTION metrics_make_days(days date[]) RETURNS integer
LANGUAGE plpgsql AS $fn$
DECLARE
    t text;
    d date;
    made integer := 0;
BEGIN
    FOREACH t IN ARRAY ARRAY['metrics_cpu', 'metrics_ram', 'metrics_gpu',
                             'metrics_temperature', 'metrics_disk'] LOOP
        IF metrics_make_default(t) THEN
            made := made + 1;
        END IF;
        FOR d IN SELECT DISTINCT x FROM unnest(days) AS x WHERE x IS NOT NULL LOOP
            IF metrics_make_day(t, d) THEN
                made := made + 1;
            END IF;
        END LOOP;
    END LOOP;
    RETURN made;
END
$fn$;

-- Detaches and drops every day partition that ends at or before `cutoff`; returns how
-- many. Rows older than `cutoff` in the DEFAULT partitions are the caller's to delete.
CREATE OR REPLACE FUNCTION metrics_drop_days_before(cutoff timestamptz) RETURNS integer
LANGUAGE plpgsql AS $fn$
DECLARE
    t text;
    p record;
    dropped integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(1835233377, 0);
    FOREACH t IN ARRAY ARRAY['metrics_cpu', 'metrics_ram', 'metrics_gpu',
                             'metrics_temperature', 'metrics_disk'] LOOP
        FOR p IN
            SELECT c.relname::text AS name
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = t::regclass
              AND c.relname::text = t || '_p' || substring(c.relname::text FROM '_p([0-9]{8})$')
              AND (to_date(substring(c.relname::text FROM '_p([0-9]{8})$'), 'YYYYMMDD') + 1)::timestamp
                  AT TIME ZONE 'UTC' <= cutoff
            ORDER BY 1
        LOOP
            EXECUTE format('ALTER TABLE %I DETACH PARTITION %I', t, p.name);
            EXECUTE format('DROP TABLE %I', p.name);
            dropped := dropped + 1;
        END LOOP;
    END LOOP;
    RETURN dropped;
END
$fn$;

DO $$
DECLARE
    t text;
    old text;
    v record;
    views text[];
    defs text[];
    g record;
    d date;
    copied bigint;
    had bigint;
    today date := (now() AT TIME ZONE 'UTC')::date;
BEGIN
    FOREACH t IN ARRAY ARRAY['metrics_cpu', 'metrics_ram', 'metrics_gpu',
                             'metrics_temperature', 'metrics_disk'] LOOP
        IF (SELECT relkind FROM pg_class WHERE oid = t::regclass) = 'p' THEN
            CONTINUE;
        END IF;
        old := t || '_unpartitioned';

        -- Views reading the table, with their definitions as written now (by name).
        views := ARRAY[]::text[];
        defs := ARRAY[]::text[];
        FOR v IN
            SELECT DISTINCT r.ev_class::regclass::text AS name, c.relkind,
                   pg_get_viewdef(r.ev_class) AS def
            FROM pg_depend dep
            JOIN pg_rewrite r ON r.oid = dep.objid
            JOIN pg_class c ON c.oid = r.ev_class
            WHERE dep.classid = 'pg_rewrite'::regclass
              AND dep.refobjid = t::regclass
              AND r.ev_class <> t::regclass
        LOOP
            IF v.relkind <> 'v' THEN
                RAISE EXCEPTION 'materialized view % reads %: drop it, let the collector migrate, then make it again',
                    v.name, t;
            END IF;
            views := views || v.name;
            defs := defs || v.def;
        END LOOP;

        EXECUTE format('ALTER TABLE %I RENAME TO %I', t, old);
        -- The index names are the new table's.
        EXECUTE format('DROP INDEX IF EXISTS %I, %I', t || '_host_timestamp', t || '_timestamp');
        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING GENERATED)
                        PARTITION BY RANGE ("timestamp")', t, old);
        -- The unique key of a window; it holds the partition column, as PostgreSQL asks.
        EXECUTE format('CREATE UNIQUE INDEX %I ON %I (host, "timestamp")', t || '_host_timestamp', t);
        -- Queries by time alone: rows arrive in time order, so a BRIN index serves them at
        -- a few pages a day (a B-tree would cost 20 bytes a row).
        EXECUTE format('CREATE INDEX %I ON %I USING brin ("timestamp")', t || '_timestamp', t);
        PERFORM metrics_make_default(t);
        -- The days the rows are from (the last 62), and yesterday to 4 days ahead; older
        -- rows go to the DEFAULT partition, and retention deletes them from there.
        FOR d IN EXECUTE format(
            'SELECT DISTINCT ("timestamp" AT TIME ZONE ''UTC'')::date FROM %I
             WHERE "timestamp" >= $1', old) USING (today - 62)::timestamp AT TIME ZONE 'UTC'
        LOOP
            PERFORM metrics_make_day(t, d);
        END LOOP;
        FOR d IN SELECT generate_series(today - 1, today + 4, interval '1 day')::date LOOP
            PERFORM metrics_make_day(t, d);
        END LOOP;

        EXECUTE format('SELECT count(*) FROM %I', old) INTO had;
        EXECUTE format('INSERT INTO %I SELECT * FROM %I', t, old);
        GET DIAGNOSTICS copied = ROW_COUNT;
        IF copied <> had THEN
            RAISE EXCEPTION '%: copied % rows of %', t, copied, had;
        END IF;

        FOR i IN 1 .. coalesce(array_length(views, 1), 0) LOOP
            EXECUTE format('CREATE OR REPLACE VIEW %s AS %s', views[i], defs[i]);
        END LOOP;
        FOR g IN
            SELECT a.grantee, a.privilege_type, a.is_grantable
            FROM pg_class c, aclexplode(c.relacl) a
            WHERE c.oid = old::regclass AND a.grantee <> c.relowner
        LOOP
            EXECUTE format('GRANT %s ON %I TO %s%s', g.privilege_type, t,
                           CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE g.grantee::regrole::text END,
                           CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
        END LOOP;
        EXECUTE format('DROP TABLE %I', old);
    END LOOP;
END
$$;
