use std::path::Path;

use super::*;

/// A self-signed certificate and its key, as PEM, written into `dir`.
fn write_pair(dir: &Path) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
}

const HASH: &str = "$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG";

fn check(text: &str) -> Result<WebConfig, String> {
    let dir = testkit::TempDir::new("webconfig");
    write_pair(&dir.0);
    WebConfig::parse(text, &dir.0).map_err(|e| e.to_string())
}

#[test]
fn good_files_give_what_they_say() {
    let cases: [(&str, bool, bool, Option<&str>); 8] = [
        ("", false, false, None),
        ("# nothing\n", false, false, None),
        (
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n",
            true,
            false,
            Some("NoClientCert"),
        ),
        (
            &format!("basic_auth_users:\n  alice: '{HASH}'\n"),
            false,
            true,
            None,
        ),
        ("basic_auth_users: {}\n", false, false, None),
        (
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n",
            true,
            false,
            Some("RequireAndVerifyClientCert"),
        ),
        (
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.pem\n  min_version: TLS13\n",
            true,
            false,
            Some("VerifyClientCertIfGiven"),
        ),
        (
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_auth_type: RequireAnyClientCert\n",
            true,
            false,
            Some("RequireAnyClientCert"),
        ),
    ];
    for (text, tls, auth, client) in cases {
        let web = check(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(
            (web.tls(), web.basic_auth(), web.client_auth_type()),
            (tls, auth, client),
            "{text:?}"
        );
    }
}

#[test]
fn bad_files_say_what_is_wrong_in_one_line() {
    let cases = [
        (
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  bogus: 1\n",
            "bogus",
        ),
        ("tls_config:\n  cert_file: cert.pem\n", "tls_config"),
        ("tls_server_config: [\n", "not a web configuration file"),
        (
            "tls_server_config:\n  cert_file: missing.pem\n  key_file: key.pem\n",
            "missing.pem: cannot read it",
        ),
        (
            "tls_server_config:\n  cert_file: key.pem\n  key_file: key.pem\n",
            "no certificate",
        ),
        (
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: cert.pem\n",
            "no PEM private key",
        ),
        (
            "tls_server_config:\n  cert_file: cert.pem\n",
            "cert_file is set but key_file is not",
        ),
        (
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_auth_type: Sometimes\n",
            "client_auth_type",
        ),
        (
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_auth_type: RequireAndVerifyClientCert\n",
            "needs client_ca_file",
        ),
        (
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_ca_file: ca.pem\n",
            "NoClientCert",
        ),
        (
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_allowed_sans: [a]\n",
            "client_allowed_sans is not supported",
        ),
        (
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  max_version: TLS11\n",
            "max_version",
        ),
        (
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  min_version: TLS9\n",
            "min_version",
        ),
        (
            "http_server_config:\n  http2: false\n",
            "http_server_config is not supported",
        ),
        (
            "basic_auth_users:\n  alice: hunter2\n",
            "\"alice\": not a bcrypt hash",
        ),
        (
            "basic_auth_users:\n  alice: '$2y$10$short'\n",
            "not a bcrypt hash",
        ),
        (
            "basic_auth_users:\n  - alice\n",
            "not a web configuration file",
        ),
    ];
    for (text, expected) in cases {
        let e = match check(text) {
            Ok(_) => panic!("{text:?} was taken"),
            Err(e) => e,
        };
        assert!(
            e.contains(expected),
            "{text:?}: {e:?} does not say {expected:?}"
        );
        assert!(!e.contains('\n'), "{text:?}: {e:?} is more than one line");
        assert!(!e.contains("hunter2"), "{e:?} shows the hash");
    }
}

#[test]
fn a_missing_file_is_named_as_missing() {
    let e = WebConfig::load(Path::new("/nonexistent/web.yml"))
        .err()
        .unwrap();
    assert_eq!(e.to_string(), "cannot read it: entity not found");
}
