-- The original (Python) service created these tables with `timestamp` alone as the
-- primary key and CHECK constraints on the values (0-100 %, 0-150 °C, used >= 0, ...).
-- V1 kept its rows (with an empty `host`) and added the (host, timestamp) key, but two of
-- its rules still stand in the way of this service:
-- * a key on `timestamp` alone refuses a second host's row for the same instant, and the
--   whole batch with it, on every retry, for ever;
-- * a value check the original never met (a board at -5 °C outdoors) fails its batch the
--   same way.
-- Both go: (host, timestamp) is the key, and the collector decides what a value is. On a
-- database this service created there is nothing to drop and this does nothing.
DO $$
DECLARE
    t text;
    c record;
BEGIN
    FOREACH t IN ARRAY ARRAY['metrics_cpu', 'metrics_ram', 'metrics_gpu',
                             'metrics_temperature', 'metrics_disk'] LOOP
        FOR c IN
            SELECT con.conname
            FROM pg_constraint con
            WHERE con.conrelid = t::regclass
              AND (con.contype = 'c'
                   OR (con.contype IN ('p', 'u')
                       AND con.conkey = ARRAY[(SELECT a.attnum FROM pg_attribute a
                                               WHERE a.attrelid = t::regclass
                                                 AND a.attname = 'timestamp')]))
        LOOP
            EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', t, c.conname);
        END LOOP;
    END LOOP;
END
$$;
