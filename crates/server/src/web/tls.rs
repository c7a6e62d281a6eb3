//! `tls_server_config` turned into a rustls server configuration: Go's version, cipher-suite,
//! curve and client-auth names mapped to what rustls (ring provider) has, certificates and the
//! client CA read from their files. Rebuilt whenever those files change (see `web::WebRuntime`),
//! so a rotated certificate needs no restart.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::ring::{cipher_suite as cs, kx_group};
use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
    SupportedCipherSuite,
};
use rustls_pki_types::pem::PemObject;

use super::config::{ClientAuth, TlsSettings};

/// Go's names of the TLS 1.2 suites rustls implements (TLS 1.3 suites are not configurable in
/// Go either).
pub const CIPHER_NAMES: [&str; 6] = [
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
];

pub fn cipher_suite(go_name: &str) -> Option<SupportedCipherSuite> {
    Some(match go_name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"
        | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        _ => return None,
    })
}

/// Go's curve names rustls (ring) has.
pub const CURVE_NAMES: [&str; 3] = ["X25519", "CurveP256", "CurveP384"];

pub fn curve(go_name: &str) -> Option<&'static dyn SupportedKxGroup> {
    Some(match go_name {
        "X25519" => kx_group::X25519,
        "CurveP256" => kx_group::SECP256R1,
        "CurveP384" => kx_group::SECP384R1,
        _ => return None,
    })
}

/// A problem: the config field it is about and the message.
pub type Problem = (String, String);

fn field(f: &str) -> String {
    format!("tls_server_config.{f}")
}

fn read_certs(path: &Path, f: &str) -> Result<Vec<CertificateDer<'static>>, Problem> {
    let iter = CertificateDer::pem_file_iter(path)
        .map_err(|e| (field(f), format!("cannot read {}: {e}", path.display())))?;
    let certs = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| (field(f), format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err((
            field(f),
            format!("{}: no PEM certificate in it", path.display()),
        ));
    }
    Ok(certs)
}

fn provider(t: &TlsSettings) -> CryptoProvider {
    let mut p = rustls::crypto::ring::default_provider();
    if !t.cipher_suites.is_empty() {
        let mut suites: Vec<SupportedCipherSuite> = p
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .copied()
            .collect();
        suites.extend(t.cipher_suites.iter().filter_map(|n| cipher_suite(n)));
        p.cipher_suites = suites;
    }
    if !t.curves.is_empty() {
        p.kx_groups = t.curves.iter().filter_map(|n| curve(n)).collect();
    }
    p
}

/// Builds the rustls configuration, reading the certificate, key and client CA files.
pub fn server_config(t: &TlsSettings) -> Result<Arc<ServerConfig>, Problem> {
    let provider = Arc::new(provider(t));
    let certs = read_certs(&t.cert_file, "cert_file")?;
    let key = PrivateKeyDer::from_pem_file(&t.key_file).map_err(|e| {
        (
            field("key_file"),
            format!("{}: no usable private key: {e}", t.key_file.display()),
        )
    })?;
    let verifier: Arc<dyn ClientCertVerifier> = match t.client_auth {
        ClientAuth::NoClientCert => WebPkiClientVerifier::no_client_auth(),
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
            Arc::new(AnyClientCert {
                mandatory: t.client_auth == ClientAuth::RequireAnyClientCert,
                provider: provider.clone(),
            })
        }
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            let Some(ca) = &t.client_ca_file else {
                return Err((field("client_ca_file"), "missing".into()));
            };
            let mut roots = RootCertStore::empty();
            for c in read_certs(ca, "client_ca_file")? {
                roots.add(c).map_err(|e| {
                    (
                        field("client_ca_file"),
                        format!("{}: unusable CA certificate: {e}", ca.display()),
                    )
                })?;
            }
            let b = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let b = if t.client_auth == ClientAuth::VerifyClientCertIfGiven {
                b.allow_unauthenticated()
            } else {
                b
            };
            b.build()
                .map_err(|e| (field("client_ca_file"), e.to_string()))?
        }
    };
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if t.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if t.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| (field("min_version"), e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| {
            let what = match e {
                rustls::Error::InconsistentKeys(_) => {
                    "the key does not belong to the certificate".to_string()
                }
                e => e.to_string(),
            };
            (
                field("key_file"),
                format!(
                    "{} and {}: {what}",
                    t.cert_file.display(),
                    t.key_file.display()
                ),
            )
        })?;
    cfg.ignore_client_order = t.prefer_server_cipher_suites;
    // HTTP/1.1 only: offering h2 would make HTTP/2 clients speak a protocol we do not serve.
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Go's RequestClientCert / RequireAnyClientCert: a client certificate is asked for (and for
/// the latter required) but not checked against any CA; the handshake signature still is.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }
}
