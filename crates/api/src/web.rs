//! The web configuration file (`METRICS_WEB_CONFIG`): the Prometheus exporter-toolkit's
//! format, as node_exporter's `--web.config.file` reads it. `tls_server_config` turns the
//! API into HTTPS (rustls, ring), optionally asking clients for a certificate;
//! `basic_auth_users` (user → bcrypt hash) makes every path ask for a password.
//!
//! Read once, at start-up: a file that cannot be used in full is an [`Error`], never
//! half-applied. As exporter-toolkit, unknown fields are errors (it unmarshals strictly), and
//! relative paths are relative to the file's own directory. Fields of the format that this
//! server does not implement (`client_allowed_sans`, `cipher_suites`, `http_server_config`,
//! `rate_limit`, …) are errors too: ignoring a restriction the operator asked for would
//! serve more than they meant.
//!
//! Owns: the file's parsing and validation, the rustls [`ServerConfig`] and the client
//! certificate policies. Does not own: the handshake (`server.rs`) or the password check
//! (`auth.rs`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::auth::BasicAuth;

#[cfg(test)]
mod tests;

/// A web configuration that cannot be used: one line, lowercase, naming the field.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read it: {0}")]
    Read(std::io::ErrorKind),
    #[error("not a web configuration file: {0}")]
    Yaml(String),
    #[error("{0} is not supported by metrics-collector (remove it)")]
    Unsupported(&'static str),
    #[error("tls_server_config: {0}")]
    Tls(String),
    #[error("basic_auth_users: {0}")]
    Users(String),
}

/// The web configuration, validated and ready: the TLS server configuration, the users.
#[derive(Clone)]
pub struct WebConfig {
    pub(crate) tls: Option<Tls>,
    pub(crate) auth: Option<Arc<BasicAuth>>,
}

/// TLS as the server and its own health check use it.
#[derive(Clone)]
pub(crate) struct Tls {
    pub(crate) server: Arc<ServerConfig>,
    /// The server's own certificate (the first of `cert_file`): what the health check
    /// accepts from the server, byte for byte.
    pub(crate) certificate: CertificateDer<'static>,
    pub(crate) client_auth: ClientAuth,
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.as_ref().map(|t| t.client_auth))
            .field("basic_auth_users", &self.auth.as_ref().map(|a| a.users()))
            .finish()
    }
}

impl WebConfig {
    /// Reads and validates the file at `path`, and the certificate files it names.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Read(e.kind()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, dir)
    }

    /// Validates the file's `text`; relative paths in it are under `dir`.
    pub(crate) fn parse(text: &str, dir: &Path) -> Result<Self, Error> {
        let file: File = if text.trim().is_empty() {
            File::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| Error::Yaml(one_line(&e.to_string())))?
        };
        if file.http_server_config.is_some() {
            return Err(Error::Unsupported("http_server_config"));
        }
        if file.rate_limit.is_some() {
            return Err(Error::Unsupported("rate_limit"));
        }
        let tls = match file.tls_server_config {
            Some(t) => t.build(dir)?,
            None => None,
        };
        let auth = match file.basic_auth_users {
            Some(users) if !users.is_empty() => {
                Some(Arc::new(BasicAuth::new(users).map_err(Error::Users)?))
            }
            _ => None,
        };
        Ok(Self { tls, auth })
    }

    /// Whether the API speaks HTTPS.
    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether every request needs a user's password.
    pub fn basic_auth(&self) -> bool {
        self.auth.is_some()
    }

    /// The client certificate policy, as exporter-toolkit names it (`None` without TLS).
    pub fn client_auth_type(&self) -> Option<&'static str> {
        self.tls.as_ref().map(|t| t.client_auth.as_str())
    }
}

/// serde-saphyr's messages can span lines (a snippet of the file): the first line says it.
fn one_line(message: &str) -> String {
    let line = message
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("cannot be parsed");
    line.trim_start_matches("error: ").to_owned()
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<TlsFile>,
    basic_auth_users: Option<BTreeMap<String, String>>,
    http_server_config: Option<IgnoredAny>,
    rate_limit: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    cert: Option<String>,
    key: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    client_ca: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    client_allowed_sans: Option<IgnoredAny>,
    cipher_suites: Option<IgnoredAny>,
    prefer_server_cipher_suites: Option<IgnoredAny>,
    curve_preferences: Option<IgnoredAny>,
}

/// exporter-toolkit's `client_auth_type` (Go's `tls.ClientAuthType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    /// No certificate asked for (the default).
    NoClientCert,
    /// Asked for, not required, not verified.
    RequestClientCert,
    /// Required, not verified (proof of its key only).
    RequireAnyClientCert,
    /// Not required; verified against the client CA when given.
    VerifyClientCertIfGiven,
    /// Required and verified against the client CA.
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    const ALL: [Self; 5] = [
        Self::NoClientCert,
        Self::RequestClientCert,
        Self::RequireAnyClientCert,
        Self::VerifyClientCertIfGiven,
        Self::RequireAndVerifyClientCert,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::NoClientCert => "NoClientCert",
            Self::RequestClientCert => "RequestClientCert",
            Self::RequireAnyClientCert => "RequireAnyClientCert",
            Self::VerifyClientCertIfGiven => "VerifyClientCertIfGiven",
            Self::RequireAndVerifyClientCert => "RequireAndVerifyClientCert",
        }
    }

    /// Whether a client without a certificate is refused.
    pub(crate) fn mandatory(self) -> bool {
        matches!(
            self,
            Self::RequireAnyClientCert | Self::RequireAndVerifyClientCert
        )
    }

    fn verifies(self) -> bool {
        matches!(
            self,
            Self::VerifyClientCertIfGiven | Self::RequireAndVerifyClientCert
        )
    }
}

/// A TLS version as exporter-toolkit names it: 10 for `TLS10` … 13 for `TLS13`.
fn version(field: &str, value: &str) -> Result<u8, Error> {
    match value {
        "TLS10" => Ok(10),
        "TLS11" => Ok(11),
        "TLS12" => Ok(12),
        "TLS13" => Ok(13),
        _ => Err(Error::Tls(format!(
            "{field}: {value:?} is not one of TLS10, TLS11, TLS12, TLS13"
        ))),
    }
}

/// The ring provider, as the rest of the workspace uses it.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsFile {
    fn build(self, dir: &Path) -> Result<Option<Tls>, Error> {
        for (field, given) in [
            (
                "tls_server_config.client_allowed_sans",
                self.client_allowed_sans.is_some(),
            ),
            (
                "tls_server_config.cipher_suites",
                self.cipher_suites.is_some(),
            ),
            (
                "tls_server_config.prefer_server_cipher_suites",
                self.prefer_server_cipher_suites.is_some(),
            ),
            (
                "tls_server_config.curve_preferences",
                self.curve_preferences.is_some(),
            ),
        ] {
            if given {
                return Err(Error::Unsupported(field));
            }
        }
        let tls = |m: String| Error::Tls(m);
        let has_cert = self.cert_file.is_some() || self.cert.is_some();
        let has_key = self.key_file.is_some() || self.key.is_some();
        let client_auth = match self.client_auth_type.as_deref() {
            None | Some("") => ClientAuth::NoClientCert,
            Some(name) => ClientAuth::ALL
                .into_iter()
                .find(|c| c.as_str() == name)
                .ok_or_else(|| {
                    tls(format!(
                        "client_auth_type: {name:?} is not one of {}",
                        ClientAuth::ALL.map(ClientAuth::as_str).join(", ")
                    ))
                })?,
        };
        let has_ca = self.client_ca_file.is_some() || self.client_ca.is_some();
        if !has_cert && !has_key {
            // exporter-toolkit serves plain HTTP for an empty TLS section; a client policy
            // with no certificate to serve is a mistake, not a wish for plain HTTP.
            if has_ca || client_auth != ClientAuth::NoClientCert {
                return Err(tls(
                    "client_auth_type and client_ca_file need cert_file and key_file".into(),
                ));
            }
            return Ok(None);
        }
        if self.cert_file.is_some() && self.cert.is_some() {
            return Err(tls("give cert_file or cert, not both".into()));
        }
        if self.key_file.is_some() && self.key.is_some() {
            return Err(tls("give key_file or key, not both".into()));
        }
        if self.client_ca_file.is_some() && self.client_ca.is_some() {
            return Err(tls("give client_ca_file or client_ca, not both".into()));
        }
        let (certs, key) = match (
            pem(dir, "cert_file", "cert", self.cert_file, self.cert)?,
            pem(dir, "key_file", "key", self.key_file, self.key)?,
        ) {
            (Some(c), Some(k)) => (c, k),
            (None, _) => return Err(tls("key_file is set but cert_file is not".into())),
            (_, None) => return Err(tls("cert_file is set but key_file is not".into())),
        };
        let (cert_field, cert_bytes) = certs;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_bytes)
            .collect::<Result<_, _>>()
            .map_err(|e| tls(format!("{cert_field}: not PEM certificates ({e})")))?;
        let Some(certificate) = chain.first().cloned() else {
            return Err(tls(format!("{cert_field}: no certificate in it")));
        };
        let (key_field, key_bytes) = key;
        // Never the key's bytes in a message: only what kind of problem it is.
        let key = PrivateKeyDer::from_pem_slice(&key_bytes)
            .map_err(|_| tls(format!("{key_field}: no PEM private key in it")))?;

        let min = version(
            "min_version",
            self.min_version.as_deref().unwrap_or("TLS12"),
        )?;
        let max = version(
            "max_version",
            self.max_version.as_deref().unwrap_or("TLS13"),
        )?;
        if min > max {
            return Err(tls("min_version is above max_version".into()));
        }
        let mut versions = Vec::new();
        if min <= 12 && max >= 12 {
            versions.push(&rustls::version::TLS12);
        }
        if max >= 13 {
            versions.push(&rustls::version::TLS13);
        }
        if versions.is_empty() {
            return Err(tls(
                "max_version: TLS 1.0 and 1.1 are not offered (rustls speaks TLS12 and TLS13)"
                    .into(),
            ));
        }

        let provider = provider();
        let roots = match pem(
            dir,
            "client_ca_file",
            "client_ca",
            self.client_ca_file,
            self.client_ca,
        )? {
            None => None,
            Some((field, bytes)) => {
                let mut roots = RootCertStore::empty();
                let mut n = 0;
                for cert in CertificateDer::pem_slice_iter(&bytes) {
                    let cert =
                        cert.map_err(|e| tls(format!("{field}: not PEM certificates ({e})")))?;
                    roots
                        .add(cert)
                        .map_err(|e| tls(format!("{field}: not a usable CA certificate ({e})")))?;
                    n += 1;
                }
                if n == 0 {
                    return Err(tls(format!("{field}: no certificate in it")));
                }
                Some(roots)
            }
        };
        let verifier: Arc<dyn ClientCertVerifier> = match (client_auth, roots) {
            (ClientAuth::NoClientCert, Some(_)) => {
                // exporter-toolkit refuses this too: a CA that would never be used.
                return Err(tls(
                    "client_ca_file is set but client_auth_type is NoClientCert: set it to RequireAndVerifyClientCert".into(),
                ));
            }
            (ClientAuth::NoClientCert, None) => WebPkiClientVerifier::no_client_auth(),
            (c, None) if c.verifies() => {
                return Err(tls(format!(
                    "client_auth_type {} needs client_ca_file (the CA that signs client certificates)",
                    c.as_str()
                )));
            }
            (c, Some(roots)) if c.verifies() => {
                let builder = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    Arc::clone(&provider),
                );
                let builder = if c.mandatory() {
                    builder
                } else {
                    builder.allow_unauthenticated()
                };
                builder
                    .build()
                    .map_err(|e| tls(format!("client_ca_file: {e}")))?
            }
            (c, _) => Arc::new(AnyCertificate {
                mandatory: c.mandatory(),
                algorithms: provider.signature_verification_algorithms,
            }),
        };
        let mut server = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| tls(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| tls(format!("{key_field} does not fit {cert_field}: {e}")))?;
        // HTTP/1.1 only: that is all this server speaks.
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(Tls {
            server: Arc::new(server),
            certificate,
            client_auth,
        }))
    }
}

/// The PEM bytes of a field given as a file (relative to `dir`) or inline, and the
/// field's name for messages.
fn pem(
    dir: &Path,
    file_field: &'static str,
    inline_field: &'static str,
    file: Option<PathBuf>,
    inline: Option<String>,
) -> Result<Option<(String, Vec<u8>)>, Error> {
    if let Some(inline) = inline {
        return Ok(Some((inline_field.to_owned(), inline.into_bytes())));
    }
    let Some(file) = file else {
        return Ok(None);
    };
    let path = dir.join(&file);
    let named = format!("{file_field} {}", path.display());
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some((named, bytes))),
        Err(e) => Err(Error::Tls(format!("{named}: cannot read it: {}", e.kind()))),
    }
}

/// `RequestClientCert` and `RequireAnyClientCert`: any certificate is taken, unverified, as
/// Go does; the handshake still proves the client holds its key.
#[derive(Debug)]
struct AnyCertificate {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyCertificate {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
