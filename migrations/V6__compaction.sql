-- Compaction of closed days: once a UTC day has ended, no collector appends to its
-- partitions any more (only a backlog after an outage does), and rebuilding their
-- indexes packs them: a fleet's inserts land at one place per host in each unique index,
-- so its pages split half full as they are written (about 148 bytes per row in all,
-- 117 once rebuilt; docs/SCALING.md).
--
-- One collector of a fleet compacts a day: the one whose claim row it is. A claim not
-- done after `stale` (a collector that died meanwhile) may be taken again; a collector may
-- always take its own claim again (it restarted). The REINDEX itself runs from the
-- collector, outside any transaction (REINDEX ... CONCURRENTLY cannot run in one).
CREATE TABLE IF NOT EXISTS metrics_compaction (
    day date PRIMARY KEY,
    claimed_by text NOT NULL,
    claimed_at timestamptz NOT NULL,
    done_at timestamptz,
    -- The day's five tables' index bytes before and after the rebuild.
    index_bytes_before bigint,
    index_bytes_after bigint
);

-- The newest day whose partitions ended at or before `closed_before` and that nobody has
-- compacted, claimed for `by_host`; NULL when there is none, or while another collector's
-- claim is in progress (one rebuild at a time in the fleet). Rows of days retention has
-- dropped go first.
CREATE OR REPLACE FUNCTION metrics_claim_compaction(
    by_host text, closed_before timestamptz, stale interval
) RETURNS date
LANGUAGE plpgsql
SET lock_timeout = '5s'
AS $fn$
DECLARE
    d date;
    claimed date;
BEGIN
    -- Claims take turns ("mcco" in ASCII), so two at once cannot both see none running.
    PERFORM pg_advisory_xact_lock(1835230063);
    IF EXISTS (SELECT 1 FROM metrics_compaction
               WHERE done_at IS NULL AND claimed_by <> by_host
                 AND claimed_at >= now() - stale) THEN
        RETURN NULL;
    END IF;
    DELETE FROM metrics_compaction c
    WHERE to_regclass(quote_ident('metrics_cpu_p' || to_char(c.day, 'YYYYMMDD'))) IS NULL;
    FOR d IN
        SELECT to_date(substring(k.relname::text FROM '_p([0-9]{8})$'), 'YYYYMMDD') AS day
        FROM pg_inherits i JOIN pg_class k ON k.oid = i.inhrelid
        WHERE i.inhparent = 'metrics_cpu'::regclass
          AND k.relname::text ~ '^metrics_cpu_p[0-9]{8}$'
        ORDER BY 1 DESC
    LOOP
        CONTINUE WHEN (d + 1)::timestamp AT TIME ZONE 'UTC' > closed_before;
        INSERT INTO metrics_compaction AS c (day, claimed_by, claimed_at)
        VALUES (d, by_host, now())
        ON CONFLICT (day) DO UPDATE
            SET claimed_by = excluded.claimed_by, claimed_at = excluded.claimed_at
            WHERE c.done_at IS NULL
              AND (c.claimed_by = excluded.claimed_by OR c.claimed_at < now() - stale)
        RETURNING c.day INTO claimed;
        IF claimed IS NOT NULL THEN
            RETURN claimed;
        END IF;
    END LOOP;
    RETURN NULL;
END
$fn$;
