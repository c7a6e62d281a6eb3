//! `SmtpServer`: a loopback SMTP server for tests of mail notifications. It speaks enough
//! ESMTP for a real client: EHLO/HELO, STARTTLS (or implicit TLS) with a self-signed certificate
//! made at start, AUTH PLAIN and LOGIN against one configured user, MAIL/RCPT/DATA, RSET, NOOP,
//! QUIT; and records every accepted message with how it was delivered.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// How the server offers TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text only.
    None,
    /// STARTTLS advertised and accepted.
    StartTls,
    /// TLS from the first byte (port 465 style).
    Implicit,
}

#[derive(Debug, Clone)]
pub struct SmtpOptions {
    pub tls: SmtpTls,
    /// `(user, password)`: AUTH PLAIN and LOGIN advertised and required before MAIL.
    pub auth: Option<(String, String)>,
    /// Advertise (and accept) only AUTH LOGIN.
    pub login_only: bool,
}

/// One accepted message.
#[derive(Debug, Clone, Default)]
pub struct SmtpMessage {
    pub hello: String,
    /// Whether the session was encrypted when the message was sent.
    pub tls: bool,
    /// `(mechanism, user)` of a successful AUTH.
    pub auth: Option<(String, String)>,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The DATA, dot-unstuffed, CRLF line ends kept.
    pub data: String,
}

impl SmtpMessage {
    /// Header fields (unfolded) until the first empty line.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for line in self.data.split("\r\n") {
            if line.is_empty() {
                break;
            }
            if line.starts_with([' ', '\t']) {
                if let Some(last) = out.last_mut() {
                    last.1.push_str(line);
                }
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                out.push((k.to_string(), v.trim().to_string()));
            }
        }
        out
    }

    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers()
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Everything after the header block.
    pub fn body(&self) -> &str {
        self.data
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or("")
    }
}

struct Shared {
    messages: Vec<SmtpMessage>,
    /// Transcript of every session, for failure messages.
    log: Vec<String>,
}

pub struct SmtpServer {
    pub addr: SocketAddr,
    /// PEM of the self-signed certificate, for the client to trust (`tls_config.ca_file`).
    pub cert_pem: String,
    shared: Arc<Mutex<Shared>>,
    _server: crate::loopback::Loopback,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

fn acceptor(cert: &rcgen::CertifiedKey) -> tokio_rustls::TlsAcceptor {
    let der = rustls::pki_types::CertificateDer::from(cert.cert.der().to_vec());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        cert.key_pair.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| panic!("tls versions: {e}"))
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .unwrap_or_else(|e| panic!("tls cert: {e}"));
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}

impl SmtpServer {
    pub fn start(opts: SmtpOptions) -> SmtpServer {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap_or_else(|e| panic!("rcgen: {e}"));
        let cert_pem = cert.cert.pem();
        let tls = acceptor(&cert);
        let shared = Arc::new(Mutex::new(Shared {
            messages: Vec::new(),
            log: Vec::new(),
        }));
        let sh = shared.clone();
        let server = crate::loopback::Loopback::start(move |sock| {
            let (sh, tls, opts) = (sh.clone(), tls.clone(), opts.clone());
            async move {
                let mut log = Vec::new();
                let r = session(sock, &tls, &opts, &sh, &mut log).await;
                if let Err(e) = r {
                    log.push(format!("!! {e}"));
                }
                lock(&sh).log.extend(log);
            }
        });
        SmtpServer {
            cert_pem,
            shared,
            addr: server.addr,
            _server: server,
        }
    }

    /// `host:port` for `smarthost`.
    pub fn smarthost(&self) -> String {
        self.addr.to_string()
    }

    pub fn messages(&self) -> Vec<SmtpMessage> {
        lock(&self.shared).messages.clone()
    }

    /// Polls until `pred` holds over the messages so far, or panics after `timeout`.
    pub fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[SmtpMessage]) -> bool,
    ) -> Vec<SmtpMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.messages();
            if pred(&m) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; {} messages; transcript:\n{}",
                m.len(),
                lock(&self.shared).log.join("\n")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

async fn write(
    io: &mut BufReader<Box<dyn Io>>,
    log: &mut Vec<String>,
    s: &str,
) -> std::io::Result<()> {
    log.push(format!("S: {}", s.trim_end()));
    io.get_mut().write_all(s.as_bytes()).await?;
    io.get_mut().flush().await
}

async fn read_line(
    io: &mut BufReader<Box<dyn Io>>,
    log: &mut Vec<String>,
) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    if io.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let line = line.trim_end_matches(['\r', '\n']).to_string();
    log.push(format!("C: {line}"));
    Ok(Some(line))
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

async fn session(
    sock: tokio::net::TcpStream,
    tls: &tokio_rustls::TlsAcceptor,
    opts: &SmtpOptions,
    sh: &Mutex<Shared>,
    log: &mut Vec<String>,
) -> std::io::Result<()> {
    let mut encrypted = opts.tls == SmtpTls::Implicit;
    let stream: Box<dyn Io> = if encrypted {
        Box::new(tls.accept(sock).await?)
    } else {
        Box::new(sock)
    };
    let mut io = BufReader::new(stream);
    write(&mut io, log, "220 localhost ESMTP tocsin-testkit\r\n").await?;
    let mut msg = SmtpMessage::default();
    let mut authed: Option<(String, String)> = None;
    while let Some(line) = read_line(&mut io, log).await? {
        let upper = line.to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or("").to_string();
        match verb.as_str() {
            "EHLO" | "HELO" => {
                msg.hello = line[4..].trim().to_string();
                let mut r = String::from("250-localhost\r\n");
                if opts.tls == SmtpTls::StartTls && !encrypted {
                    r.push_str("250-STARTTLS\r\n");
                }
                if opts.auth.is_some() {
                    r.push_str(if opts.login_only {
                        "250-AUTH LOGIN\r\n"
                    } else {
                        "250-AUTH PLAIN LOGIN\r\n"
                    });
                }
                r.push_str("250 8BITMIME\r\n");
                write(&mut io, log, &r).await?;
            }
            "STARTTLS" if opts.tls == SmtpTls::StartTls && !encrypted => {
                write(&mut io, log, "220 2.0.0 ready to start TLS\r\n").await?;
                let inner = io.into_inner();
                let upgraded = tls.accept(inner).await?;
                io = BufReader::new(Box::new(upgraded));
                encrypted = true;
                msg = SmtpMessage::default();
            }
            "AUTH" => {
                let Some((user, pass)) = &opts.auth else {
                    write(&mut io, log, "502 5.5.1 AUTH not available\r\n").await?;
                    continue;
                };
                let parts: Vec<&str> = line.split_whitespace().collect();
                let mech = parts
                    .get(1)
                    .map(|m| m.to_ascii_uppercase())
                    .unwrap_or_default();
                let (u, p) = match mech.as_str() {
                    "PLAIN" if !opts.login_only => {
                        let resp = match parts.get(2) {
                            Some(r) => r.to_string(),
                            None => {
                                write(&mut io, log, "334 \r\n").await?;
                                read_line(&mut io, log).await?.unwrap_or_default()
                            }
                        };
                        let dec = b64(&resp);
                        let f: Vec<&str> = dec.split('\0').collect();
                        (
                            f.get(1).copied().unwrap_or("").to_string(),
                            f.get(2).copied().unwrap_or("").to_string(),
                        )
                    }
                    "LOGIN" => {
                        let u = match parts.get(2) {
                            Some(r) => b64(r),
                            None => {
                                write(&mut io, log, "334 VXNlcm5hbWU6\r\n").await?;
                                b64(&read_line(&mut io, log).await?.unwrap_or_default())
                            }
                        };
                        write(&mut io, log, "334 UGFzc3dvcmQ6\r\n").await?;
                        (u, b64(&read_line(&mut io, log).await?.unwrap_or_default()))
                    }
                    _ => {
                        write(&mut io, log, "504 5.5.4 unrecognized mechanism\r\n").await?;
                        continue;
                    }
                };
                if &u == user && &p == pass {
                    authed = Some((mech, u));
                    write(&mut io, log, "235 2.7.0 authenticated\r\n").await?;
                } else {
                    write(&mut io, log, "535 5.7.8 bad credentials\r\n").await?;
                }
            }
            "MAIL" => {
                if opts.auth.is_some() && authed.is_none() {
                    write(&mut io, log, "530 5.7.0 authentication required\r\n").await?;
                    continue;
                }
                msg.mail_from = angle(&line);
                write(&mut io, log, "250 2.1.0 ok\r\n").await?;
            }
            "RCPT" => {
                msg.rcpt_to.push(angle(&line));
                write(&mut io, log, "250 2.1.5 ok\r\n").await?;
            }
            "DATA" => {
                write(&mut io, log, "354 end data with <CR><LF>.<CR><LF>\r\n").await?;
                let mut data = String::new();
                loop {
                    let mut l = String::new();
                    if io.read_line(&mut l).await? == 0 {
                        return Ok(());
                    }
                    if l == ".\r\n" || l == ".\n" {
                        break;
                    }
                    let l = l.strip_prefix('.').unwrap_or(&l);
                    data.push_str(l);
                }
                log.push(format!("C: <{} bytes of data>", data.len()));
                let mut m = std::mem::take(&mut msg);
                m.data = data;
                m.tls = encrypted;
                m.auth = authed.clone();
                msg.hello = m.hello.clone();
                lock(sh).messages.push(m);
                write(&mut io, log, "250 2.0.0 queued\r\n").await?;
            }
            "RSET" => {
                let hello = msg.hello.clone();
                msg = SmtpMessage {
                    hello,
                    ..SmtpMessage::default()
                };
                write(&mut io, log, "250 2.0.0 ok\r\n").await?;
            }
            "NOOP" => write(&mut io, log, "250 2.0.0 ok\r\n").await?,
            "QUIT" => {
                write(&mut io, log, "221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => write(&mut io, log, "502 5.5.2 command not recognized\r\n").await?,
        }
    }
    Ok(())
}

/// The address inside `<...>` of a MAIL or RCPT line.
fn angle(line: &str) -> String {
    match (line.find('<'), line.rfind('>')) {
        (Some(a), Some(b)) if a < b => line[a + 1..b].to_string(),
        _ => line
            .split_once(':')
            .map(|(_, r)| r.trim().to_string())
            .unwrap_or_default(),
    }
}
