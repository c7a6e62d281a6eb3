//! `ExpoServer`: a loopback HTTP(S) server that serves a settable exposition body, optionally
//! behind basic auth, a bearer token, a required header, or TLS (with a throwaway CA from rcgen),
//! and records what each scrape request carried.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};

#[derive(Clone, Default)]
pub struct ExpoOptions {
    /// Expected `Authorization: Basic` user and password.
    pub basic_auth: Option<(String, String)>,
    /// Expected `Authorization: Bearer` token.
    pub bearer: Option<String>,
    /// A header every request must carry, e.g. a PaaS instance selector.
    pub required_header: Option<(String, String)>,
    /// Serve HTTPS with a certificate for these names (also valid for 127.0.0.1).
    pub tls_names: Option<Vec<String>>,
    /// Content-Type of the response.
    pub content_type: Option<String>,
}

#[derive(Default)]
struct Shared {
    body: String,
    requests: Vec<Vec<(String, String)>>,
}

pub struct ExpoServer {
    pub addr: SocketAddr,
    /// PEM of the CA that signed the server certificate (TLS only).
    pub ca_pem: Option<String>,
    shared: Arc<Mutex<Shared>>,
    _server: crate::loopback::Loopback,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ExpoServer {
    pub fn start(body: &str, opts: ExpoOptions) -> ExpoServer {
        let shared = Arc::new(Mutex::new(Shared {
            body: body.to_string(),
            requests: Vec::new(),
        }));
        let (ca_pem, acceptor) = match &opts.tls_names {
            Some(names) => {
                let (ca, acc) = tls_acceptor(names);
                (Some(ca), Some(acc))
            }
            None => (None, None),
        };
        let sh = shared.clone();
        let server = crate::loopback::Loopback::start(move |sock| {
            let sh = sh.clone();
            let opts = opts.clone();
            let acceptor = acceptor.clone();
            async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let resp = handle(&sh, &opts, &req);
                    async move { Ok::<_, std::convert::Infallible>(resp) }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match acceptor {
                    Some(acc) => {
                        if let Ok(tls) = acc.accept(sock).await {
                            let _ = builder.serve_connection(TokioIo::new(tls), svc).await;
                        }
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(sock), svc).await;
                    }
                }
            }
        });
        ExpoServer {
            ca_pem,
            shared,
            addr: server.addr,
            _server: server,
        }
    }

    pub fn set_body(&self, body: &str) {
        lock(&self.shared).body = body.to_string();
    }

    /// Headers of every request so far (names lower-case).
    pub fn requests(&self) -> Vec<Vec<(String, String)>> {
        lock(&self.shared).requests.clone()
    }
}

fn handle(
    sh: &Mutex<Shared>,
    opts: &ExpoOptions,
    req: &Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut g = lock(sh);
    g.requests.push(headers.clone());
    let deny = |code: StatusCode| {
        Response::builder()
            .status(code)
            .body(Full::new(Bytes::from_static(b"denied\n")))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
    };
    if let Some((u, p)) = &opts.basic_auth {
        use base64::Engine as _;
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        );
        if get("authorization").as_deref() != Some(want.as_str()) {
            return deny(StatusCode::UNAUTHORIZED);
        }
    }
    if let Some(t) = &opts.bearer {
        if get("authorization").as_deref() != Some(format!("Bearer {t}").as_str()) {
            return deny(StatusCode::UNAUTHORIZED);
        }
    }
    if let Some((n, v)) = &opts.required_header {
        if get(&n.to_ascii_lowercase()).as_deref() != Some(v.as_str()) {
            return deny(StatusCode::NOT_FOUND);
        }
    }
    let ct = opts
        .content_type
        .clone()
        .unwrap_or_else(|| "text/plain; version=0.0.4; charset=utf-8".into());
    Response::builder()
        .header("content-type", ct)
        .body(Full::new(Bytes::from(g.body.clone())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn tls_acceptor(names: &[String]) -> (String, tokio_rustls::TlsAcceptor) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap_or_else(|e| panic!("ca key: {e}"));
    let mut ca_params =
        CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("ca params: {e}"));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params
        .self_signed(&ca_key)
        .unwrap_or_else(|e| panic!("ca: {e}"));
    let key = KeyPair::generate().unwrap_or_else(|e| panic!("key: {e}"));
    let mut sans = names.to_vec();
    sans.push("127.0.0.1".into());
    let params = CertificateParams::new(sans).unwrap_or_else(|e| panic!("params: {e}"));
    let cert = params
        .signed_by(&key, &ca, &ca_key)
        .unwrap_or_else(|e| panic!("cert: {e}"));
    let chain = vec![cert.der().clone()];
    let pk = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap_or_else(|e| panic!("tls versions: {e}"))
    .with_no_client_auth()
    .with_single_cert(chain, pk)
    .unwrap_or_else(|e| panic!("server cert: {e}"));
    (ca.pem(), tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}
