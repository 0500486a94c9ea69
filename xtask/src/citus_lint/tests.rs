use super::{lint, migrations};
use crate::util::root;

/// A day-partitioned schema the way a V4 would make it: new partitioned tables with
/// (host, "timestamp") keys, the rows moved, the old tables dropped, the new ones renamed,
/// and a PL/pgSQL function that makes a day's partitions with dynamic SQL.
const PARTITIONED: &str = r#"
CREATE TABLE metrics_cpu_p (
    host text NOT NULL,
    "timestamp" timestamptz NOT NULL,
    value double precision NOT NULL,
    value_min double precision,
    value_max double precision,
    PRIMARY KEY (host, "timestamp")
) PARTITION BY RANGE ("timestamp");
CREATE TABLE metrics_cpu_p_default PARTITION OF metrics_cpu_p DEFAULT;
INSERT INTO metrics_cpu_p SELECT host, timestamp, value, value_min, value_max FROM metrics_cpu;
DROP TABLE metrics_cpu;
ALTER TABLE metrics_cpu_p RENAME TO metrics_cpu;
CREATE INDEX metrics_cpu_ts ON metrics_cpu ("timestamp");

CREATE OR REPLACE FUNCTION metrics_make_day(day date) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['metrics_cpu', 'metrics_ram'] LOOP
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                       t || '_' || to_char(day, 'YYYYMMDD'), t, day, day + 1);
    END LOOP;
END
$fn$;
"#;

fn real() -> Vec<(String, String)> {
    migrations(&root().join("migrations"))
}

/// Lints the real migrations followed by `extra` (as a V99); returns the problems.
fn with(extra: &str) -> Vec<String> {
    let mut files = real();
    files.push(("V99__case.sql".to_owned(), extra.to_owned()));
    lint(&files)
}

/// `extra` after the real migrations must be refused with a problem containing `wanted`.
fn check_refused(extra: &str, wanted: &str) {
    let problems = with(extra);
    assert!(
        problems.iter().any(|p| p.contains(wanted)),
        "wanted a problem containing {wanted:?} for:\n{extra}\ngot: {problems:#?}"
    );
}

fn check_accepted(extra: &str) {
    let problems = with(extra);
    assert!(problems.is_empty(), "for:\n{extra}\ngot: {problems:#?}");
}

#[test]
fn the_migrations_keep_the_schema_ready_for_create_distributed_table_by_host() {
    let files = real();
    assert!(files.len() >= 3, "no migrations found");
    let problems = lint(&files);
    assert!(
        problems.is_empty(),
        "migrations/ would block SELECT create_distributed_table(<table>, 'host') on Citus \
         (see xtask/src/citus_lint.rs):\n{}",
        problems.join("\n")
    );
}

#[test]
fn a_day_partitioned_schema_with_host_timestamp_keys_and_plpgsql_is_accepted() {
    check_accepted(PARTITIONED);
    check_accepted(
        "CREATE UNIQUE INDEX ON ONLY metrics_ram USING btree (\"host\" COLLATE \"C\", timestamp DESC);",
    );
    check_accepted(
        "ALTER TABLE public.metrics_gpu ADD CONSTRAINT k UNIQUE NULLS NOT DISTINCT (timestamp, host);",
    );
    check_accepted("-- a comment about a UNIQUE (timestamp) key and REFERENCES\nSELECT 1;");
    check_accepted("COMMENT ON TABLE metrics_cpu IS 'unique per host and timestamp';");
    check_accepted(
        "DO $$ BEGIN EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', 'metrics_cpu', 'x'); END $$;",
    );
    check_accepted(
        "CREATE TABLE metrics_net (host text PRIMARY KEY, up bigint NOT NULL);\n\
         CREATE TABLE metrics_net2 (LIKE metrics_cpu INCLUDING ALL);",
    );
    check_accepted(
        "ALTER TABLE metrics_disk ADD CONSTRAINT no_overlap EXCLUDE USING gist (host WITH =, tstzrange(timestamp, timestamp, '[]') WITH &&);",
    );
}

#[test]
fn unique_keys_without_host_are_refused() {
    for (sql, wanted) in [
        (
            "CREATE UNIQUE INDEX metrics_cpu_ts ON metrics_cpu (timestamp);",
            "unique index on metrics_cpu (timestamp) without host",
        ),
        (
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS x ON public.metrics_ram USING btree (\"timestamp\");",
            "unique index on metrics_ram (timestamp)",
        ),
        (
            "CREATE UNIQUE INDEX x ON metrics_ram (lower(host), timestamp);",
            "metrics_ram ((expression), timestamp)",
        ),
        (
            "ALTER TABLE metrics_cpu ADD PRIMARY KEY (timestamp);",
            "PRIMARY KEY on metrics_cpu (timestamp) without host",
        ),
        (
            "ALTER TABLE metrics_cpu ADD CONSTRAINT k UNIQUE (timestamp, value);",
            "UNIQUE on metrics_cpu (timestamp, value)",
        ),
        (
            "CREATE TABLE metrics_net (host text NOT NULL, id bigint PRIMARY KEY);",
            "PRIMARY KEY on metrics_net (id) without host",
        ),
        (
            "CREATE TABLE metrics_net (host text NOT NULL, at timestamptz UNIQUE);",
            "UNIQUE on metrics_net (at)",
        ),
        (
            "CREATE TABLE metrics_net (host text NOT NULL, at timestamptz, CONSTRAINT k PRIMARY KEY (at)) PARTITION BY RANGE (at);",
            "PRIMARY KEY on metrics_net (at)",
        ),
        (
            "ALTER TABLE metrics_disk ADD EXCLUDE USING gist (tstzrange(timestamp, timestamp) WITH &&);",
            "EXCLUDE on metrics_disk without `host WITH =`",
        ),
        (
            "ALTER TABLE metrics_disk ADD COLUMN id bigint UNIQUE;",
            "UNIQUE on metrics_disk (id)",
        ),
        // Dynamic SQL is read too.
        (
            "DO $$ BEGIN EXECUTE format('CREATE UNIQUE INDEX ON %I (\"timestamp\")', 'metrics_cpu'); END $$;",
            "unique index on %i (timestamp)",
        ),
        (
            "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $f$ BEGIN IF true THEN ALTER TABLE metrics_gpu ADD UNIQUE (timestamp); END IF; END $f$;",
            "UNIQUE on metrics_gpu (timestamp)",
        ),
        // A key it cannot read is refused, not waved through.
        (
            "DO $$ BEGIN EXECUTE 'CREATE UNIQUE INDEX ON ' || quote_ident('metrics_cpu') || ' (timestamp)'; END $$;",
            "a unique index on a table this lint cannot read",
        ),
        (
            "DO $$ BEGIN EXECUTE 'ALTER TABLE metrics_cpu ADD ' || 'UNIQUE (timestamp)'; END $$;",
            "a key in SQL put together with `||`",
        ),
        (
            "DO $$ BEGIN EXECUTE 'ALTER TABLE metrics_cpu ADD ' || 'CONSTRAINT k ' || 'UNIQUE (timestamp)'; END $$;",
            "ALTER TABLE metrics_cpu ADD and nothing",
        ),
        (
            "DO $$ BEGIN EXECUTE format('ALTER TABLE %I ADD UNIQUE (%I)', 'metrics_cpu', 'timestamp'); END $$;",
            "UNIQUE on %i (%i) without host",
        ),
        (
            "DO $$ BEGIN EXECUTE format('CREATE UNIQUE INDEX ON %I (%s)', 'metrics_cpu', 'timestamp'); END $$;",
            "unique index on %i (%s) without host",
        ),
    ] {
        check_refused(sql, wanted);
    }
}

#[test]
fn foreign_keys_sequences_and_identity_columns_are_refused() {
    for (sql, wanted) in [
        (
            "ALTER TABLE metrics_ram ADD FOREIGN KEY (host, timestamp) REFERENCES metrics_cpu (host, timestamp);",
            "FOREIGN KEY",
        ),
        (
            "CREATE TABLE hosts (host text PRIMARY KEY, site text REFERENCES sites);",
            "REFERENCES",
        ),
        (
            "ALTER TABLE metrics_cpu ADD COLUMN id bigserial;",
            "`bigserial` makes a sequence",
        ),
        (
            "CREATE TABLE metrics_net (host text NOT NULL, id serial4);",
            "`serial4` makes a sequence",
        ),
        (
            "ALTER TABLE metrics_cpu ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY;",
            "identity column",
        ),
        ("CREATE SEQUENCE metrics_ids;", "CREATE SEQUENCE"),
        (
            "ALTER TABLE metrics_cpu ADD COLUMN id bigint DEFAULT nextval('metrics_ids');",
            "nextval",
        ),
    ] {
        check_refused(sql, wanted);
    }
}

#[test]
fn tables_without_a_not_null_host_are_refused() {
    for (sql, wanted) in [
        (
            "CREATE TABLE metrics_net (at timestamptz NOT NULL, up bigint);",
            "metrics_net has no host column",
        ),
        (
            "CREATE TABLE metrics_net (host text, up bigint);",
            "metrics_net.host may be NULL",
        ),
        (
            "ALTER TABLE metrics_cpu ALTER COLUMN host DROP NOT NULL;",
            "metrics_cpu.host may be NULL",
        ),
        (
            "DROP TABLE metrics_gpu;",
            "metrics_gpu is not created by the migrations",
        ),
        (
            "ALTER TABLE metrics_cpu RENAME TO metrics_cpu_old; CREATE TABLE metrics_cpu (timestamp timestamptz NOT NULL, value float8);",
            "metrics_cpu has no host column",
        ),
        (
            "DO $$ BEGIN EXECUTE format('CREATE TABLE %I (timestamp timestamptz, value float8)', 'metrics_x'); END $$;",
            "dynamic SQL (%i) without `host … NOT NULL`",
        ),
        (
            "CREATE TABLE metrics_net AS SELECT timestamp, value FROM metrics_cpu;",
            "CREATE TABLE metrics_net AS",
        ),
        (
            "CREATE TABLE metrics_net (LIKE somewhere_else);",
            "LIKE a table this lint does not know",
        ),
        (
            "ALTER TABLE metrics_cpu ALTER COLUMN host TYPE varchar(64);",
            "Citus cannot alter the distribution column's type",
        ),
        (
            "ALTER TABLE metrics_cpu ALTER host SET DATA TYPE bytea;",
            "the type of host changes",
        ),
        (
            "ALTER TABLE metrics_cpu DROP COLUMN IF EXISTS host;",
            "host is dropped",
        ),
        (
            "ALTER TABLE metrics_cpu RENAME COLUMN host TO hostname;",
            "host is renamed",
        ),
    ] {
        check_refused(sql, wanted);
    }
}

#[test]
fn inheritance_and_triggers_are_refused() {
    for (sql, wanted) in [
        (
            "CREATE TABLE metrics_cpu_2026 (host text NOT NULL) INHERITS (metrics_cpu);",
            "INHERITS another table",
        ),
        (
            "ALTER TABLE metrics_gpu INHERIT metrics_cpu;",
            "INHERITs another table",
        ),
        (
            "CREATE TRIGGER t BEFORE INSERT ON metrics_cpu FOR EACH ROW EXECUTE FUNCTION f();",
            "a trigger on metrics_cpu",
        ),
        (
            "CREATE OR REPLACE CONSTRAINT TRIGGER t AFTER INSERT ON public.metrics_disk FOR EACH ROW EXECUTE FUNCTION f();",
            "a trigger on metrics_disk",
        ),
    ] {
        check_refused(sql, wanted);
    }
}

#[test]
fn problems_name_the_file_and_line() {
    let problems = with("SELECT 1;\n\nCREATE UNIQUE INDEX x ON metrics_cpu (timestamp);");
    assert!(
        problems.iter().any(|p| p.starts_with("V99__case.sql:3: ")),
        "{problems:#?}"
    );
}
