//! Shared by the web config tests: certificates made with rcgen (a CA, a server certificate for
//! 127.0.0.1 and a client certificate), bcrypt hashes, and a directory holding them beside a web
//! config file.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use tocsin_testkit::ClientTls;

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tocsin"))
}

/// A CA and what it signed, as PEM.
pub struct Pki {
    pub ca_pem: String,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let ca = p.self_signed(&ca_key).unwrap();
        Pki {
            ca_pem: ca.pem(),
            ca,
            ca_key,
        }
    }

    fn leaf(&self, names: &[&str], usage: ExtendedKeyUsagePurpose, cn: &str) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![usage];
        let c = p.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        Leaf {
            cert_pem: c.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A server certificate for 127.0.0.1 and localhost.
    pub fn server(&self, cn: &str) -> Leaf {
        self.leaf(
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
            cn,
        )
    }

    pub fn client(&self, cn: &str) -> Leaf {
        self.leaf(&[], ExtendedKeyUsagePurpose::ClientAuth, cn)
    }

    /// How a test client trusts this CA (with `identity` for mutual TLS).
    pub fn client_tls(&self, identity: Option<&Leaf>) -> ClientTls {
        ClientTls {
            ca_pem: self.ca_pem.as_bytes().to_vec(),
            identity_pem: identity.map(|l| format!("{}{}", l.cert_pem, l.key_pem).into_bytes()),
        }
    }
}

/// A bcrypt hash at the lowest cost (the tests check behaviour, not strength).
pub fn hash(pw: &str) -> String {
    bcrypt::hash(pw, 4).unwrap()
}

/// Writes `text` to `path` atomically (temp file then rename), as a deploy tool would.
pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A directory for a web config and the files it names.
pub struct WebDir {
    pub dir: tempfile::TempDir,
}

impl WebDir {
    pub fn new() -> WebDir {
        WebDir {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        write_atomic(&p, text);
        p
    }

    /// Writes server.crt / server.key (and ca.crt) for `pki`.
    pub fn write_server_cert(&self, pki: &Pki, leaf: &Leaf) {
        self.write("ca.crt", &pki.ca_pem);
        self.write("server.key", &leaf.key_pem);
        self.write("server.crt", &leaf.cert_pem);
    }

    /// `--web.config.file <dir>/web.yml` after writing `yaml` there.
    pub fn config(&self, yaml: &str) -> String {
        self.write("web.yml", yaml).display().to_string()
    }
}

/// Polls `f` until it returns true (every 100 ms, at most `secs` seconds).
pub fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// True when the external program is there; panics when scripts/test should have installed it.
pub fn have(path: &str) -> bool {
    if Path::new(path).exists() {
        return true;
    }
    if std::env::var_os("TOCSIN_REQUIRE_EXTERNAL").is_some() {
        panic!("{path} is not installed (scripts/test installs it)");
    }
    eprintln!("SKIPPED: {path} not installed; scripts/test installs it");
    false
}
