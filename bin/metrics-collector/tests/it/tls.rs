//! TLS to PostgreSQL (`POSTGRES_SSLMODE`, `POSTGRES_SSLROOTCERT`) against a real server
//! with `ssl = on` and a CA this test makes: verification refuses what it should, with an
//! error that says which setting, and the password never crosses the network in clear.

use std::net::SocketAddr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use serde_json::Value;

use crate::faults::query;
use crate::harness::{Service, TempDir, database, wait_for};
use crate::pgproxy::{Mode, PgProxy, contains};
use crate::settings::run_to_exit;

/// A CA, and a server certificate and key it signed for `names`.
struct Pki {
    ca_pem: String,
    server_pem: String,
    server_key: String,
}

fn pki(ca_name: &str, names: &[&str]) -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut server = CertificateParams::new(names).unwrap();
    server
        .distinguished_name
        .push(DnType::CommonName, "postgres");
    let key = KeyPair::generate().unwrap();
    let cert = server.signed_by(&key, &*ca).unwrap();
    Pki {
        ca_pem: ca.pem(),
        server_pem: cert.pem(),
        server_key: key.serialize_pem(),
    }
}

/// A server with TLS on, listening on 127.0.0.1 and 127.0.0.2, with `hba` lines.
fn tls_cluster(tag: &str, pki: &Pki, hba: &[&str]) -> devpg::Cluster {
    let mut options = devpg::Options::default()
        .setting("ssl", "on")
        .setting("listen_addresses", "127.0.0.1,127.0.0.2")
        .file("server.crt", pki.server_pem.as_bytes())
        .file("server.key", pki.server_key.as_bytes())
        .hba("local all all trust");
    for line in hba {
        options = options.hba(line);
    }
    devpg::Cluster::start_with(tag, options)
        .unwrap_or_else(|e| panic!("a PostgreSQL with TLS for this test: {e}"))
}

/// The service writing to `host:port` with these TLS settings; its `/health` database
/// part once it says anything but "connecting".
fn collector(host: &str, port: u16, extra: &[(&str, &str)]) -> (Service, Value) {
    let port = port.to_string();
    let mut env = vec![
        ("POSTGRES_HOST", host),
        ("POSTGRES_PORT", port.as_str()),
        ("POSTGRES_USER", "postgres"),
        ("POSTGRES_DB", "postgres"),
        ("METRICS_INTERVAL_LIVE", "0.5"),
        ("METRICS_INTERVAL_PERSIST", "0.5"),
    ];
    env.extend_from_slice(extra);
    let svc = Service::start(&env).ready();
    let db = wait_for(
        Duration::from_secs(15),
        "the first attempt's outcome",
        || {
            let h = svc.json("/health");
            let db = h["database"].clone();
            (db["state"] == "connected" || db["error"] != "connecting" && db["error"].is_string())
                .then_some(db)
        },
    );
    (svc, db)
}

fn error(db: &Value) -> &str {
    db["error"].as_str().unwrap_or_default()
}

#[test]
fn verification_refuses_a_wrong_name_and_an_unknown_ca_and_says_which_setting() {
    let good = pki("metrics-collector test CA", &["localhost", "127.0.0.1"]);
    let pg = tls_cluster("tls-verify", &good, &["host all all 127.0.0.0/8 trust"]);
    let dir = TempDir::new("tls");
    let ca = dir.0.join("ca.pem");
    std::fs::write(&ca, &good.ca_pem).unwrap();
    // Two CAs that did not sign it: one of another name, one of the same name.
    let other = dir.0.join("other-ca.pem");
    std::fs::write(&other, pki("another CA", &["localhost"]).ca_pem).unwrap();
    let namesake = dir.0.join("namesake-ca.pem");
    let namesake_pki = pki("metrics-collector test CA", &["localhost"]);
    std::fs::write(&namesake, namesake_pki.ca_pem).unwrap();
    let ca = ca.to_str().unwrap();
    let strangers = [other.to_str().unwrap(), namesake.to_str().unwrap()];

    // The name connected to is in the certificate, signed by the CA given: connected, and
    // the server sees an encrypted connection.
    let (svc, db) = collector(
        "127.0.0.1",
        pg.port(),
        &[
            ("POSTGRES_SSLMODE", "verify-full"),
            ("POSTGRES_SSLROOTCERT", ca),
        ],
    );
    assert_eq!(db["state"], "connected", "{db}\n{}", svc.log());
    let ssl = query(
        &format!("{} dbname=postgres", pg.conninfo()),
        "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
          WHERE a.application_name = 'metrics-collector'",
    );
    assert_eq!(
        ssl[0].get::<_, Option<bool>>(0),
        Some(true),
        "the collector's connections are TLS"
    );
    assert!(svc.log().contains("sslmode=verify-full"), "{}", svc.log());
    drop(svc);

    // The same server by another of its addresses: not the name in the certificate.
    let (svc, db) = collector(
        "127.0.0.2",
        pg.port(),
        &[
            ("POSTGRES_SSLMODE", "verify-full"),
            ("POSTGRES_SSLROOTCERT", ca),
        ],
    );
    assert_eq!(db["state"], "unreachable", "{db}");
    assert!(
        error(&db).contains("not valid for POSTGRES_HOST=127.0.0.2"),
        "the error names the host setting: {db}"
    );
    assert!(
        svc.log().contains("not valid for POSTGRES_HOST=127.0.0.2"),
        "{}",
        svc.log()
    );
    drop(svc);

    // verify-ca checks the chain only: that address is fine.
    let (svc, db) = collector(
        "127.0.0.2",
        pg.port(),
        &[
            ("POSTGRES_SSLMODE", "verify-ca"),
            ("POSTGRES_SSLROOTCERT", ca),
        ],
    );
    assert_eq!(db["state"], "connected", "{db}\n{}", svc.log());
    drop(svc);

    // A CA that did not sign the server's certificate, for both verifying modes (and for
    // require, which verifies the chain once a root certificate is given, as libpq).
    for (mode, stranger) in [
        ("verify-full", strangers[0]),
        ("verify-full", strangers[1]),
        ("verify-ca", strangers[0]),
        ("require", strangers[1]),
    ] {
        let (svc, db) = collector(
            "127.0.0.1",
            pg.port(),
            &[
                ("POSTGRES_SSLMODE", mode),
                ("POSTGRES_SSLROOTCERT", stranger),
            ],
        );
        assert_eq!(db["state"], "unreachable", "{mode} {stranger}: {db}");
        assert!(
            error(&db).contains("not signed by a CA in POSTGRES_SSLROOTCERT"),
            "{mode} {stranger}: the error names the CA setting: {db}"
        );
        drop(svc);
    }

    // Without a root certificate, require encrypts without verifying (libpq's meaning).
    let (svc, db) = collector("127.0.0.2", pg.port(), &[("POSTGRES_SSLMODE", "require")]);
    assert_eq!(db["state"], "connected", "{db}\n{}", svc.log());
}

#[test]
fn the_password_never_crosses_the_network_in_clear_with_require() {
    let certs = pki("metrics-collector test CA", &["localhost", "127.0.0.1"]);
    // `password` authentication: the client sends the password itself, the worst case.
    let pg = tls_cluster(
        "tls-password",
        &certs,
        &[
            "host all postgres 127.0.0.1/32 trust",
            "host all collector 127.0.0.1/32 password",
        ],
    );
    let password = "pw-Kq7-never-in-clear";
    let admin = format!("{} dbname=postgres", pg.conninfo());
    query(
        &admin,
        &format!("CREATE ROLE collector LOGIN PASSWORD '{password}'"),
    );
    query(&admin, "CREATE DATABASE metrics OWNER collector");
    let upstream = SocketAddr::from(([127, 0, 0, 1], pg.port()));

    let through = |mode: &str| {
        let proxy = PgProxy::start(upstream, Mode::Record);
        let port = proxy.addr.port().to_string();
        let svc = Service::start(&[
            ("POSTGRES_HOST", "127.0.0.1"),
            ("POSTGRES_PORT", &port),
            ("POSTGRES_USER", "collector"),
            ("POSTGRES_PASSWORD", password),
            ("POSTGRES_DB", "metrics"),
            ("POSTGRES_SSLMODE", mode),
            ("METRICS_INTERVAL_LIVE", "0.5"),
            ("METRICS_INTERVAL_PERSIST", "0.5"),
        ])
        .ready();
        wait_for(Duration::from_secs(15), "connected and writing", || {
            let db = svc.json("/health")["database"].clone();
            (db["state"] == "connected").then_some(())
        });
        let log = svc.log();
        drop(svc);
        (proxy.recorded(), log)
    };

    let (bytes, log) = through("require");
    assert!(!bytes.is_empty());
    // The conversation opens with an SSLRequest (length 8, code 80877103).
    assert_eq!(
        &bytes[..8],
        &[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f],
        "TLS asked for first"
    );
    assert!(
        !contains(&bytes, password.as_bytes()),
        "the password crossed the proxy in clear with require"
    );
    assert!(!log.contains(password), "the password was logged");

    // The check can fail: without TLS, `password` authentication sends it as it is.
    let (bytes, _) = through("disable");
    assert!(
        contains(&bytes, password.as_bytes()),
        "with sslmode=disable the proxy sees the password: the check above means something"
    );
}

#[test]
fn require_refuses_a_server_without_tls_and_prefer_goes_on_without() {
    let (db, _client, _rt) = database("tls_off");
    let field = |k: &str| {
        db.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let (host, port, name) = (
        field("POSTGRES_HOST"),
        field("POSTGRES_PORT"),
        field("POSTGRES_DB"),
    );
    let port: u16 = port.parse().unwrap();
    let with = |mode: &str| {
        collector(
            &host,
            port,
            &[("POSTGRES_SSLMODE", mode), ("POSTGRES_DB", &name)],
        )
    };
    let (svc, state) = with("require");
    assert_eq!(state["state"], "unreachable", "{state}");
    assert!(
        error(&state).contains("TLS"),
        "the error says TLS is what is missing: {state}"
    );
    drop(svc);
    let (_svc, state) = with("prefer");
    assert_eq!(state["state"], "connected", "{state}");
}

#[test]
fn bad_tls_settings_stop_start_up_with_exit_2_naming_them() {
    let dir = TempDir::new("tls-bad");
    let not_pem = dir.0.join("not.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let missing = dir.0.join("missing.pem");
    let (not_pem, missing) = (not_pem.to_str().unwrap(), missing.to_str().unwrap());
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("POSTGRES_SSLMODE", "verify-full")],
            "POSTGRES_SSLROOTCERT",
        ),
        (&[("POSTGRES_SSLMODE", "verify-ca")], "POSTGRES_SSLROOTCERT"),
        (
            &[
                ("POSTGRES_SSLMODE", "verify-full"),
                ("POSTGRES_SSLROOTCERT", missing),
            ],
            "missing.pem",
        ),
        (
            &[
                ("POSTGRES_SSLMODE", "require"),
                ("POSTGRES_SSLROOTCERT", not_pem),
            ],
            "not.pem",
        ),
    ];
    for (env, named) in cases {
        let mut env = env.to_vec();
        // Persistence on, so the TLS settings are the ones in use.
        env.push(("POSTGRES_HOST", "127.0.0.1"));
        let (code, stderr) = run_to_exit(&env, &[]);
        assert_eq!(code, Some(2), "{env:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{env:?}: one line: {stderr:?}");
        assert!(
            stderr.contains(named) && stderr.contains("POSTGRES_SSL"),
            "{env:?}: {stderr}"
        );
    }
}
