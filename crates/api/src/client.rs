//! The smallest client of our own API: what `metrics-collector healthcheck` (a container's
//! `HEALTHCHECK`) asks, with a deadline on every step and no runtime; over TLS when the
//! web configuration says so.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// Where to reach a server listening on `listen`: a wildcard address becomes loopback.
pub fn local_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// What `GET /health` at `address` got, each step (connect, handshake, write, read)
/// bounded by `timeout`. With the web configuration's TLS, over TLS, accepting only the
/// server's own certificate (the first of its `cert_file`, byte for byte): the name is
/// not checked (this is a loopback connection to ourselves), the key is, by the handshake.
pub fn health_status(
    address: SocketAddr,
    timeout: Duration,
    web: Option<&crate::WebConfig>,
) -> std::io::Result<Health> {
    let stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    match web.and_then(|w| w.tls.as_ref()) {
        None => ask(stream, address),
        Some(tls) => {
            let config = rustls::ClientConfig::builder_with_provider(crate::web::provider())
                .with_safe_default_protocol_versions()
                .map_err(std::io::Error::other)?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(OwnCertificate {
                    certificate: tls.certificate.clone(),
                    algorithms: crate::web::provider().signature_verification_algorithms,
                }))
                .with_no_client_auth();
            let name = ServerName::IpAddress(address.ip().into());
            let connection = rustls::ClientConnection::new(Arc::new(config), name)
                .map_err(std::io::Error::other)?;
            let stream = rustls::StreamOwned::new(connection, stream);
            match ask(stream, address) {
                Err(e) if tls.client_auth.mandatory() && refused_for_certificate(&e) => {
                    Ok(Health::NeedsClientCertificate)
                }
                other => other,
            }
        }
    }
}

/// The answer of our own server to the health check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// `/health` answered with this status.
    Status(u16),
    /// Our server (its certificate checked) refused the handshake: it wants a client
    /// certificate, which the health check does not have.
    NeedsClientCertificate,
}

fn ask(mut stream: impl Read + Write, address: SocketAddr) -> std::io::Result<Health> {
    write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    stream.flush()?;
    let mut head = [0u8; 64];
    let mut filled = 0;
    while filled < 12 {
        let n = stream.read(&mut head[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    // "HTTP/1.1 200 OK"
    std::str::from_utf8(&head[..filled])
        .ok()
        .and_then(|s| s.split_ascii_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .map(Health::Status)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response"))
}

/// Whether a TLS error is the server refusing us for want of a client certificate.
fn refused_for_certificate(e: &std::io::Error) -> bool {
    use rustls::AlertDescription as A;
    matches!(
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::AlertReceived(
            A::CertificateRequired | A::HandshakeFailure | A::BadCertificate
        ))
    )
}

/// Accepts exactly one certificate: the server's own, read from its `cert_file`.
#[derive(Debug)]
struct OwnCertificate {
    certificate: CertificateDer<'static>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for OwnCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.certificate.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
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

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_become_loopback_and_the_rest_stays() {
        let cases = [
            ("0.0.0.0:9100", "127.0.0.1:9100"),
            ("[::]:9100", "[::1]:9100"),
            ("10.1.2.3:80", "10.1.2.3:80"),
        ];
        for (listen, expected) in cases {
            assert_eq!(
                local_address(listen.parse().unwrap()),
                expected.parse().unwrap(),
                "{listen}"
            );
        }
    }
}
