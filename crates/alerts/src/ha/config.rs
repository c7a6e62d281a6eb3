//! The `ha:` section of tocsin.yml: where the shared state lives and who this replica is.

use std::str::FromStr;

use serde::Deserialize;

/// What a replica does about notifications while it cannot reach the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fallback {
    /// Nobody notifies until the database is back (no duplicates; the lost-database alert is
    /// visible on every replica's console and API).
    #[default]
    None,
    /// Every replica that lost the database notifies on its own (duplicates, but no silence).
    Notify,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaConfig {
    /// A libpq connection string (`host=… port=… user=… dbname=…`) or a `postgres://` URL,
    /// without a password.
    pub postgres: String,
    /// File holding the password (trailing newline ignored).
    #[serde(default)]
    pub password_file: Option<String>,
    /// This replica's name, unique among the replicas.
    pub replica: String,
    /// The external label that tells replicas apart; dropped from alerts so that the replicas'
    /// copies of an alert are one alert.
    #[serde(default = "default_replica_label")]
    pub replica_label: String,
    /// How long a dead sender may go unnoticed: the others try for the lease every tenth of it,
    /// and a sender that cannot reach the database for half of it stops sending.
    #[serde(default = "default_takeover")]
    pub takeover_timeout: String,
    #[serde(default)]
    pub fallback: Fallback,
    /// Resolved by `validate`.
    #[serde(skip)]
    pub takeover_timeout_ms: i64,
    /// Read from `password_file` by `validate`.
    #[serde(skip)]
    pub password: Option<String>,
}

fn default_replica_label() -> String {
    "replica".into()
}

fn default_takeover() -> String {
    "5s".into()
}

impl HaConfig {
    /// Checks every field, reads the password file (relative to `base`); each problem is
    /// `(field, message)`.
    pub fn validate(&mut self, base: &std::path::Path) -> Vec<(String, String)> {
        let mut errs = Vec::new();
        match postgres::Config::from_str(&self.postgres) {
            Ok(c) => {
                if c.get_password().is_some() {
                    errs.push((
                        "ha.postgres".into(),
                        "holds a password: put it in ha.password_file instead, so the config \
                         can be shown and committed"
                            .into(),
                    ));
                }
                if c.get_ssl_mode() == postgres::config::SslMode::Require {
                    errs.push((
                        "ha.postgres".into(),
                        "sslmode=require is not supported yet (Tocsin connects without TLS); \
                         reach PostgreSQL over a trusted network or a local tunnel"
                            .into(),
                    ));
                }
                if c.get_hosts().is_empty() {
                    errs.push(("ha.postgres".into(), "names no host".into()));
                }
            }
            Err(e) => errs.push((
                "ha.postgres".into(),
                format!("not a connection string: {e}"),
            )),
        }
        if self.replica.trim().is_empty() {
            errs.push(("ha.replica".into(), "must name this replica".into()));
        }
        if !valid_label_name(&self.replica_label) {
            errs.push((
                "ha.replica_label".into(),
                format!("{:?} is not a label name", self.replica_label),
            ));
        }
        match tocsin_model::duration::parse_duration_ms(&self.takeover_timeout) {
            Ok(ms) if ms >= 1000 => self.takeover_timeout_ms = ms,
            Ok(_) => errs.push((
                "ha.takeover_timeout".into(),
                "must be at least 1s (the lease is renewed every tenth of it)".into(),
            )),
            Err(e) => errs.push(("ha.takeover_timeout".into(), e)),
        }
        if let Some(f) = &self.password_file {
            let path = base.join(f);
            match std::fs::read_to_string(&path) {
                Ok(s) => self.password = Some(s.trim_end_matches(['\n', '\r']).to_string()),
                Err(e) => errs.push((
                    "ha.password_file".into(),
                    format!("reading {}: {e}", path.display()),
                )),
            }
        }
        errs
    }

    /// The connection settings: the string, the password, short timeouts and TCP keepalives so
    /// that a dead peer is noticed within the takeover time.
    pub(crate) fn pg_config(&self) -> Result<postgres::Config, String> {
        let mut c = postgres::Config::from_str(&self.postgres).map_err(|e| e.to_string())?;
        if let Some(p) = &self.password {
            c.password(p);
        }
        let t = std::time::Duration::from_millis(self.takeover_timeout_ms.max(1000) as u64);
        c.connect_timeout(t / 2)
            .keepalives(true)
            // Whole seconds, at least one: the socket option takes seconds and refuses 0.
            .keepalives_idle(std::time::Duration::from_secs((t.as_secs() / 4).max(1)))
            .application_name(&format!("tocsin-{}", self.replica))
            // `CREATE ... IF NOT EXISTS` on every connect would log a notice each time.
            .options("-c client_min_messages=warning");
        Ok(c)
    }

    /// How long one query may take before the caller treats the database as lost.
    pub(crate) fn op_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis((self.takeover_timeout_ms / 2).max(500) as u64)
    }
}

fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(y: &str) -> HaConfig {
        let mut c: HaConfig = serde_norway::from_str(y).unwrap_or_else(|e| panic!("{e}"));
        let errs = c.validate(std::path::Path::new("."));
        assert!(errs.is_empty(), "{errs:?}");
        c
    }

    #[test]
    fn defaults_and_refusals() {
        let c = parse("postgres: host=127.0.0.1 port=5432 user=tocsin dbname=tocsin\nreplica: a\n");
        assert_eq!(c.takeover_timeout_ms, 5000);
        assert_eq!(c.replica_label, "replica");
        assert_eq!(c.fallback, Fallback::None);
        let mut bad: HaConfig = serde_norway::from_str(
            "postgres: postgres://u:secret@h/db\nreplica: ''\ntakeover_timeout: 100ms\nreplica_label: 1x\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let fields: Vec<String> = bad
            .validate(std::path::Path::new("."))
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(
            fields,
            [
                "ha.postgres",
                "ha.replica",
                "ha.replica_label",
                "ha.takeover_timeout"
            ]
        );
        assert!(
            serde_norway::from_str::<HaConfig>("postgres: x\nreplica: a\nleader: b\n").is_err()
        );
    }
}
