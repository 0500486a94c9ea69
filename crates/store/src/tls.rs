//! TLS to PostgreSQL with rustls, as libpq's `sslmode` means it:
//!
//! | mode | encrypted | server verified |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (the default, as libpq's) | when the server offers it, else plain | no |
//! | `require` | always (refuses a server without TLS) | no; with a root certificate given, as `verify-ca` (libpq does the same) |
//! | `verify-ca` | always | the chain, up to `POSTGRES_SSLROOTCERT`'s CA |
//! | `verify-full` | always | the chain, and the certificate names the host connected to |
//!
//! No channel binding is offered (SCRAM runs without `-PLUS`): the password itself never
//! crosses the network with SCRAM, and with `password` authentication it crosses inside
//! TLS under `require` or stricter.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

/// libpq's `sslmode` values (all but `allow`, which only ever downgrades).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub const NAMES: [&'static str; 5] =
        ["disable", "prefer", "require", "verify-ca", "verify-full"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

impl FromStr for SslMode {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return Err(()),
        })
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the TLS settings cannot be used (at start-up: a bad setting).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "POSTGRES_SSLMODE={0} needs POSTGRES_SSLROOTCERT: the CA certificate (PEM) that signed the server's certificate"
    )]
    NoRootCert(SslMode),
    #[error("POSTGRES_SSLROOTCERT={path:?}: {reason}")]
    RootCert { path: PathBuf, reason: String },
}

/// How to reach the server: the mode, and the TLS client that goes with it. Cheap to
/// clone; one per collector.
#[derive(Clone)]
pub struct Tls {
    mode: SslMode,
    /// How the certificate is checked, for the error messages.
    check: Check,
    config: Result<Arc<ClientConfig>, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    ChainAndName,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("mode", &self.mode)
            .field("check", &self.check)
            .finish_non_exhaustive()
    }
}

impl Default for Tls {
    /// `prefer`, as libpq: encrypted when the server offers it, nothing verified.
    fn default() -> Self {
        Self::with_check(SslMode::Prefer, Check::Nothing, RootCertStore::empty())
    }
}

impl Tls {
    /// The settings for `mode`, reading the CA certificates of `root_cert` (PEM) when given.
    pub fn new(mode: SslMode, root_cert: Option<&Path>) -> Result<Self, TlsError> {
        let roots = match root_cert {
            Some(path) => Some(read_roots(path)?),
            None => None,
        };
        let (check, roots) = match (mode, roots) {
            (SslMode::Disable | SslMode::Prefer, _) => (Check::Nothing, RootCertStore::empty()),
            // libpq: "if a root CA file exists, sslmode=require behaves like verify-ca".
            (SslMode::Require, Some(roots)) => (Check::Chain, roots),
            (SslMode::Require, None) => (Check::Nothing, RootCertStore::empty()),
            (SslMode::VerifyCa, Some(roots)) => (Check::Chain, roots),
            (SslMode::VerifyFull, Some(roots)) => (Check::ChainAndName, roots),
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                return Err(TlsError::NoRootCert(mode));
            }
        };
        Ok(Self::with_check(mode, check, roots))
    }

    fn with_check(mode: SslMode, check: Check, roots: RootCertStore) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algorithms = provider.signature_verification_algorithms;
        let verifier: Arc<dyn ServerCertVerifier> = match check {
            Check::Nothing => Arc::new(AnyCertificate {
                algorithms,
                trust: true,
            }),
            Check::Chain | Check::ChainAndName => {
                // An empty store cannot be reached here: read_roots refuses one.
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build();
                match webpki {
                    Ok(v) if check == Check::Chain => Arc::new(ChainOnly(v)),
                    Ok(v) => v,
                    // No trust anchor to build on: nothing verifies, so nothing connects.
                    Err(_) => Arc::new(AnyCertificate {
                        algorithms,
                        trust: false,
                    }),
                }
            }
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| {
                b.dangerous()
                    .with_custom_certificate_verifier(verifier)
                    .with_no_client_auth()
            });
        Self {
            mode,
            check,
            // ring supports the default protocol versions, so this is always `Ok`; were it
            // not, each connection would fail with the reason instead of the service.
            config: config.map(Arc::new).map_err(|e| e.to_string()),
        }
    }

    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// tokio-postgres' own mode: it asks for TLS, and gives up or goes on without it.
    pub(crate) fn postgres_mode(&self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Pg;
        match self.mode {
            SslMode::Disable => Pg::Disable,
            SslMode::Prefer => Pg::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Pg::Require,
        }
    }

    pub(crate) fn connector(&self) -> MakeRustls {
        MakeRustls {
            config: self.config.clone(),
            check: self.check,
            mode: self.mode,
        }
    }
}

fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let fail = |reason: String| TlsError::RootCert {
        path: path.to_owned(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    let mut bad = 0;
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        let cert = cert.map_err(|e| fail(format!("not PEM certificates: {e}")))?;
        if roots.add(cert).is_err() {
            bad += 1;
        }
    }
    if roots.is_empty() {
        return Err(fail(if bad > 0 {
            format!("{bad} certificate(s), none usable as a CA")
        } else {
            "no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)".to_owned()
        }));
    }
    Ok(roots)
}

/// `prefer` and `require` without a root certificate: encrypted, the server unverified
/// (what libpq does), or (`trust: false`, a verifier that could not be built) no server
/// trusted at all. The handshake's signatures are checked either way.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
    trust: bool,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.trust {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ))
        }
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

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted CA; the name in the certificate may be
/// any. webpki checks the chain before the name, so a name error means the chain held.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// tokio-postgres' TLS hook: one [`RustlsConnect`] per connection, named for its host.
#[derive(Clone)]
pub(crate) struct MakeRustls {
    config: Result<Arc<ClientConfig>, String>,
    check: Check,
    mode: SslMode,
}

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, io::Error> {
        let config = self
            .config
            .clone()
            .map_err(|e| io::Error::other(format!("TLS is unavailable: {e}")))?;
        let name = ServerName::try_from(domain.to_owned()).map_err(|_| {
            io::Error::other(format!(
                "POSTGRES_HOST={domain:?} is not a host name or address TLS can check"
            ))
        })?;
        Ok(RustlsConnect {
            config,
            name,
            check: self.check,
            mode: self.mode,
        })
    }
}

pub(crate) struct RustlsConnect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    check: Check,
    mode: SslMode,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let connector = tokio_rustls::TlsConnector::from(self.config);
            let shown = self.name.to_str().into_owned();
            connector
                .connect(self.name, stream)
                .await
                .map(|s| RustlsStream(Box::new(s)))
                .map_err(|e| explain(e, &shown, self.check, self.mode))
        })
    }
}

/// A handshake failure in the operator's words: which setting to look at.
fn explain(e: io::Error, host: &str, check: Check, mode: SslMode) -> io::Error {
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return e;
    };
    let text = match tls {
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "the server's certificate is not valid for POSTGRES_HOST={host} (POSTGRES_SSLMODE={mode} checks the name; the certificate must name that host)"
        ),
        // A CA of another name is unknown; one of the same name did not sign it.
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) if check != Check::Nothing => {
            format!(
                "the server's certificate is not signed by a CA in POSTGRES_SSLROOTCERT (POSTGRES_SSLMODE={mode}): {tls}"
            )
        }
        rustls::Error::InvalidCertificate(c) => {
            format!("the server's certificate was refused (POSTGRES_SSLMODE={mode}): {c:?}")
        }
        other => format!("TLS handshake with {host} failed: {other}"),
    };
    io::Error::new(e.kind(), text)
}

/// The encrypted connection. Boxed: the rustls state is large and moved once.
pub(crate) struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_as_libpq_spells_them() {
        for name in SslMode::NAMES {
            let mode: SslMode = name.parse().unwrap();
            assert_eq!(mode.as_str(), name);
        }
        for bad in ["", "allow", "VERIFY-FULL", "verify_full", "true"] {
            assert!(bad.parse::<SslMode>().is_err(), "{bad}");
        }
        assert_eq!(SslMode::default(), SslMode::Prefer, "libpq's default");
    }

    #[test]
    fn verifying_modes_need_a_root_certificate() {
        for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
            let e = Tls::new(mode, None).unwrap_err().to_string();
            assert!(e.contains("POSTGRES_SSLROOTCERT"), "{e}");
            assert!(e.contains(mode.as_str()), "{e}");
        }
        for mode in [SslMode::Disable, SslMode::Prefer, SslMode::Require] {
            assert_eq!(Tls::new(mode, None).unwrap().check, Check::Nothing);
        }
    }

    #[test]
    fn a_root_certificate_that_is_not_one_is_named() {
        let dir = std::env::temp_dir().join(format!("store-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let e = Tls::new(SslMode::VerifyFull, Some(&missing))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("POSTGRES_SSLROOTCERT") && e.contains("missing.pem"),
            "{e}"
        );
        let text = dir.join("text.pem");
        std::fs::write(&text, "not a certificate\n").unwrap();
        let e = Tls::new(SslMode::VerifyCa, Some(&text))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no certificate"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
