//! `METRICS_WEB_CONFIG` (exporter-toolkit's web configuration) against the real binary:
//! HTTPS with a CA this test makes, client certificates, basic authentication (and how
//! long a refusal takes), the `healthcheck` subcommand, and a real Prometheus scraping over
//! TLS with a password.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::harness::{Killed, Service, TempDir, command, get, request, tool, wait_for};
use crate::prometheus::{free_port, prometheus_api, vector};
use crate::settings::run_to_exit;
use testkit::{Response, parse_response};

/// A CA, the server's certificate for 127.0.0.1 and localhost, and a client's, as files
/// in `dir`: `ca.pem`, `server.pem`, `server.key`, `client.pem`, `client.key`.
fn pki(dir: &std::path::Path) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose, name: &str| {
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &*ca).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server, server_key) = leaf(
        vec!["127.0.0.1".into(), "localhost".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
        "metrics-collector",
    );
    let (client, client_key) = leaf(vec![], ExtendedKeyUsagePurpose::ClientAuth, "scraper");
    for (name, pem) in [
        ("ca.pem", ca.pem()),
        ("server.pem", server),
        ("server.key", server_key),
        ("client.pem", client),
        ("client.key", client_key),
    ] {
        std::fs::write(dir.join(name), pem).unwrap();
    }
}

const TLS: &str = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n";

/// A bcrypt hash of `password` (cost 4 keeps the debug build's checks short).
fn hash(password: &str, cost: u32) -> String {
    bcrypt::hash(password, cost).unwrap()
}

fn users(cost: u32) -> String {
    format!(
        "basic_auth_users:\n  alice: '{}'\n  bob: '{}'\n",
        hash("alice-secret", cost),
        hash("bob-secret", cost)
    )
}

/// The service with `web` as its web configuration, in `dir` (which holds the PKI).
fn start(dir: &TempDir, web: &str) -> Service {
    let path = dir.0.join("web.yml");
    std::fs::write(&path, web).unwrap();
    Service::start_in(
        &dir.0,
        &[
            ("METRICS_INTERVAL_LIVE", "0.5"),
            ("METRICS_WEB_CONFIG", path.to_str().unwrap()),
        ],
    )
}

/// A TLS client trusting `ca.pem` in `dir`, with `client.pem` as its certificate if asked.
fn client_config(dir: &std::path::Path, with_certificate: bool) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = if with_certificate {
        let chain = CertificateDer::pem_file_iter(dir.join("client.pem"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_file(dir.join("client.key")).unwrap();
        builder.with_client_auth_cert(chain, key).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    Arc::new(config)
}

/// `raw` over TLS to `addr` (the name checked: 127.0.0.1), the whole answer.
fn https(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    raw: &str,
) -> std::io::Result<Response> {
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let name = ServerName::IpAddress(addr.ip().into());
    let connection =
        rustls::ClientConnection::new(Arc::clone(config), name).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    tls.write_all(raw.as_bytes())?;
    tls.flush()?;
    let mut bytes = Vec::new();
    match tls.read_to_end(&mut bytes) {
        Ok(_) => {}
        // A close without close_notify after a whole answer: the answer stands.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !bytes.is_empty() => {}
        Err(e) => return Err(e),
    }
    if bytes.is_empty() {
        return Err(std::io::Error::other("no answer"));
    }
    Ok(parse_response(&bytes))
}

fn get_request(path: &str, authorization: Option<(&str, &str)>) -> String {
    let auth = authorization.map_or_else(String::new, |(user, password)| {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Authorization: Basic {token}\r\n")
    });
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n{auth}Connection: close\r\n\r\n")
}

/// Waits until `/metrics` answers 200 over TLS.
fn ready_tls(svc: &Service, config: &Arc<rustls::ClientConfig>, auth: Option<(&str, &str)>) {
    wait_for(Duration::from_secs(15), "the first sample over TLS", || {
        let r = https(svc.addr, config, &get_request("/metrics", auth)).ok()?;
        (r.status == 200).then_some(())
    });
}

#[test]
fn https_with_the_operators_certificate_and_plain_http_told_to_use_https() {
    let dir = TempDir::new("web-tls");
    pki(&dir.0);
    let svc = start(&dir, TLS);
    let config = client_config(&dir.0, false);
    ready_tls(&svc, &config, None);
    for path in ["/metrics", "/health", "/gpu", "/metrics/prometheus"] {
        let r = https(svc.addr, &config, &get_request(path, None)).unwrap();
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    // A stream over TLS: its first event arrives.
    let tcp = TcpStream::connect(svc.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let connection = rustls::ClientConnection::new(
        Arc::clone(&config),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    tls.write_all(b"GET /metrics/stream HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("data: {") {
        let n = tls.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "the stream ended: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    drop(tls);

    // Plain HTTP to the TLS port: a plain 400 saying what to do, not a hang or garbage.
    let r = get(svc.addr, "/metrics");
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"].as_str().unwrap().contains("https"),
        "{}",
        r.text()
    );
    // A client that does not trust the CA is refused by its own side's verification.
    let stranger = {
        let other = TempDir::new("web-tls-other");
        pki(&other.0);
        client_config(&other.0, false)
    };
    assert!(https(svc.addr, &stranger, &get_request("/metrics", None)).is_err());
}

#[test]
fn a_stalled_handshake_holds_up_no_one_else() {
    let dir = TempDir::new("web-slow");
    pki(&dir.0);
    let svc = start(&dir, TLS);
    let config = client_config(&dir.0, false);
    ready_tls(&svc, &config, None);
    // Slow-loris: connections that start a handshake record and stop, and ones that
    // connect and send nothing.
    let mut stalled = Vec::new();
    for i in 0..20 {
        let mut s = TcpStream::connect(svc.addr).unwrap();
        if i % 2 == 0 {
            s.write_all(&[0x16, 0x03, 0x01, 0x00]).unwrap();
        }
        stalled.push(s);
    }
    let started = Instant::now();
    let r = https(svc.addr, &config, &get_request("/health", None)).unwrap();
    assert_eq!(r.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a handshake behind 20 stalled ones took {:?}",
        started.elapsed()
    );
    // And the stalled ones are closed by the server after the header timeout (10 s).
    let mut s = stalled.pop().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 16];
    let closed_at = Instant::now();
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the stalled handshake got bytes");
    assert!(closed_at.elapsed() < Duration::from_secs(15));
}

#[test]
fn client_certificates_are_required_and_verified_when_the_file_says_so() {
    let dir = TempDir::new("web-mtls");
    pki(&dir.0);
    let web =
        format!("{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n");
    let svc = start(&dir, &web);
    let with = client_config(&dir.0, true);
    ready_tls(&svc, &with, None);
    let r = https(svc.addr, &with, &get_request("/metrics", None)).unwrap();
    assert_eq!(r.status, 200);
    let without = client_config(&dir.0, false);
    let refused = https(svc.addr, &without, &get_request("/metrics", None));
    assert!(
        refused.is_err(),
        "a client without a certificate got {:?}",
        refused.map(|r| r.status)
    );
    // A certificate from another CA is refused too.
    let other = TempDir::new("web-mtls-other");
    pki(&other.0);
    std::fs::copy(dir.0.join("ca.pem"), other.0.join("ca.pem")).unwrap();
    let foreign = client_config(&other.0, true);
    assert!(https(svc.addr, &foreign, &get_request("/metrics", None)).is_err());

    // VerifyClientCertIfGiven: without one is fine, with one it is verified.
    let dir2 = TempDir::new("web-mtls-opt");
    pki(&dir2.0);
    let web =
        format!("{TLS}  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.pem\n");
    let svc = start(&dir2, &web);
    let without = client_config(&dir2.0, false);
    ready_tls(&svc, &without, None);
    let with = client_config(&dir2.0, true);
    assert_eq!(
        https(svc.addr, &with, &get_request("/health", None))
            .unwrap()
            .status,
        200
    );
    let foreign = {
        std::fs::copy(dir2.0.join("ca.pem"), other.0.join("ca.pem")).unwrap();
        client_config(&other.0, true)
    };
    assert!(https(svc.addr, &foreign, &get_request("/health", None)).is_err());
}

#[test]
fn basic_auth_lets_only_a_users_password_in_on_every_path() {
    let dir = TempDir::new("web-auth");
    let svc = start(&dir, &users(4));
    wait_for(Duration::from_secs(15), "the first sample", || {
        let r = request(
            svc.addr,
            &get_request("/metrics", Some(("alice", "alice-secret"))),
        );
        (r.status == 200).then_some(())
    });
    type Case<'a> = (&'a str, Option<(&'a str, &'a str)>, u16);
    let cases: [Case; 9] = [
        ("/metrics", Some(("alice", "alice-secret")), 200),
        ("/metrics", Some(("bob", "bob-secret")), 200),
        ("/health", Some(("alice", "alice-secret")), 200),
        ("/metrics", Some(("alice", "bob-secret")), 401),
        ("/metrics", Some(("alice", "")), 401),
        ("/metrics", Some(("carol", "alice-secret")), 401),
        ("/metrics", None, 401),
        ("/health", None, 401),
        ("/no-such-path", None, 401),
    ];
    for (path, auth, status) in cases {
        let r = request(svc.addr, &get_request(path, auth));
        assert_eq!(r.status, status, "{path} {auth:?}: {}", r.text());
        if status == 401 {
            assert!(
                r.header("www-authenticate")
                    .unwrap_or("")
                    .starts_with("Basic"),
                "{:?}",
                r.headers
            );
            assert!(r.json()["error"].is_string(), "{}", r.text());
            assert_eq!(r.header("content-type"), Some("application/json"));
        }
    }
    // Streams too (they skip the direct path while auth is on).
    let r = request(svc.addr, &get_request("/metrics/stream", None));
    assert_eq!(r.status, 401);
    assert!(!svc.log().contains("alice-secret"), "{}", svc.log());
}

/// The median of `f`'s durations over `n` tries.
fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[test]
fn an_unknown_user_is_refused_as_slowly_as_a_wrong_password() {
    // Cost 8: long enough that bcrypt dominates (tens of ms in a debug build), short
    // enough for 40 tries.
    let dir = TempDir::new("web-timing");
    let svc = start(&dir, &users(8));
    wait_for(Duration::from_secs(15), "the first sample", || {
        let r = request(
            svc.addr,
            &get_request("/metrics", Some(("alice", "alice-secret"))),
        );
        (r.status == 200).then_some(())
    });
    let timed = |user: &str, password: &str| {
        let started = Instant::now();
        let r = request(svc.addr, &get_request("/health", Some((user, password))));
        assert_eq!(r.status, 401);
        started.elapsed()
    };
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..20 {
        // Interleaved, each with a new password (nothing remembered).
        known.push(timed("alice", &format!("wrong-{i}")));
        unknown.push(timed("mallory", &format!("wrong-{i}")));
    }
    let (known, unknown) = (median(known), median(unknown));
    eprintln!("median refusal: known user {known:?}, unknown user {unknown:?}");
    let ratio = known.as_secs_f64().max(unknown.as_secs_f64())
        / known.as_secs_f64().min(unknown.as_secs_f64());
    assert!(
        ratio < 1.5,
        "a wrong password for a known user takes {known:?} (median), for an unknown user {unknown:?}"
    );
    // And the right password, once checked, is remembered: no bcrypt each scrape.
    let right: Vec<Duration> = (0..10)
        .map(|_| {
            let started = Instant::now();
            let r = request(
                svc.addr,
                &get_request("/health", Some(("alice", "alice-secret"))),
            );
            assert_eq!(r.status, 200);
            started.elapsed()
        })
        .collect();
    let right = median(right);
    assert!(
        right < known,
        "a remembered password took {right:?}, a bcrypt {known:?}"
    );
}

#[test]
fn healthcheck_is_healthy_against_tls_with_basic_auth_and_with_client_certificates() {
    for (tag, extra) in [
        ("web-hc-auth", users(4)),
        (
            "web-hc-mtls",
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n".to_owned(),
        ),
    ] {
        let dir = TempDir::new(tag);
        pki(&dir.0);
        let svc = start(&dir, &format!("{TLS}{extra}"));
        let listen = svc.addr.to_string();
        let path = dir.0.join("web.yml");
        let env = [
            ("METRICS_LISTEN", listen.as_str()),
            ("METRICS_WEB_CONFIG", path.to_str().unwrap()),
        ];
        let out = wait_for(Duration::from_secs(15), "a healthy healthcheck", || {
            let out = command(&dir.0, &env).arg("healthcheck").output().unwrap();
            out.status.success().then_some(out)
        });
        assert_eq!(out.status.code(), Some(0), "{tag}");
        drop(svc);
        let out = command(&dir.0, &env).arg("healthcheck").output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{tag}: with no service");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("https://"),
            "{tag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Another server's certificate on that port is not ours: unhealthy.
    let dir = TempDir::new("web-hc-other");
    pki(&dir.0);
    let svc = start(&dir, TLS);
    let other = TempDir::new("web-hc-other2");
    pki(&other.0);
    std::fs::write(other.0.join("web.yml"), TLS).unwrap();
    let listen = svc.addr.to_string();
    let path = other.0.join("web.yml");
    let out = command(
        &other.0,
        &[
            ("METRICS_LISTEN", listen.as_str()),
            ("METRICS_WEB_CONFIG", path.to_str().unwrap()),
        ],
    )
    .arg("healthcheck")
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_bad_web_config_stops_start_up_with_exit_2_and_one_line() {
    let dir = TempDir::new("web-bad");
    pki(&dir.0);
    let write = |name: &str, text: &str| {
        let path = dir.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let missing = dir.0.join("missing.yml").to_str().unwrap().to_owned();
    let cases = [
        (missing, "cannot read it"),
        (
            write("yaml.yml", "tls_server_config: [\n"),
            "not a web configuration file",
        ),
        (
            write(
                "unknown.yml",
                "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  cert_fiel: x\n",
            ),
            "cert_fiel",
        ),
        (
            write(
                "nocert.yml",
                "tls_server_config:\n  cert_file: nope.pem\n  key_file: server.key\n",
            ),
            "nope.pem: cannot read it",
        ),
        (
            write(
                "badkey.yml",
                "tls_server_config:\n  cert_file: server.pem\n  key_file: server.pem\n",
            ),
            "no PEM private key",
        ),
        (
            write(
                "hash.yml",
                "basic_auth_users:\n  alice: plaintext-password\n",
            ),
            "not a bcrypt hash",
        ),
    ];
    for (path, expected) in cases {
        let (code, stderr) = run_to_exit(&[("METRICS_WEB_CONFIG", &path)], &[]);
        assert_eq!(code, Some(2), "{path}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{path}: {stderr}");
        assert!(stderr.contains("METRICS_WEB_CONFIG"), "{stderr}");
        assert!(
            stderr.contains(expected),
            "{path}: {stderr:?} lacks {expected:?}"
        );
        assert!(!stderr.contains("plaintext-password"), "{stderr}");
    }
}

#[test]
fn a_real_prometheus_scrapes_over_tls_with_a_password() {
    let dir = TempDir::new("web-prom");
    pki(&dir.0);
    let svc = start(&dir, &format!("{TLS}{}", users(4)));
    let ca = dir.0.join("ca.pem");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
         scrape_configs:\n\
         \x20 - job_name: collector\n    scheme: https\n    metrics_path: /metrics\n\
         \x20   tls_config:\n      ca_file: {ca}\n\
         \x20   basic_auth:\n      username: alice\n      password: alice-secret\n\
         \x20   static_configs:\n      - targets: ['{addr}']\n",
        ca = ca.display(),
        addr = svc.addr
    );
    std::fs::write(dir.0.join("prometheus.yml"), config).unwrap();
    let web = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let prometheus = tool(
        "METRICS_TEST_PROMETHEUS",
        "prometheus",
        "the Debian package prometheus",
    );
    let child = Command::new(&prometheus)
        .arg(format!(
            "--config.file={}",
            dir.0.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.0.join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {prometheus:?}: {e}"));
    let _prometheus = Killed(child);
    let targets = wait_for(Duration::from_secs(60), "the target up", || {
        let t = prometheus_api(web, "/api/v1/targets")?;
        let active = t["data"]["activeTargets"].as_array()?.clone();
        (active.len() == 1 && active[0]["health"] == "up").then_some(active)
    });
    assert_eq!(targets[0]["lastError"], "", "{targets:?}");
    let series = vector(web, "metrics_collector_build_info", 1);
    assert_eq!(series[0]["metric"]["job"], "collector", "{series:?}");
    let memory = vector(web, "metrics_collector_memory_total_bytes", 1);
    let v: f64 = memory[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(v > 0.0, "{memory:?}");
}
