//! `tocsin state migrate --to postgres`: a single node's `state.db` becomes the replicas' shared
//! state. The notification log is copied (so the first sender does not notify again what this
//! node already sent), silences, acknowledgements and shelves in force and notes become
//! operations every replica applies, and executed actions' keys are claimed (so no replica runs
//! them again). One transaction: it lands whole or not at all, and it refuses a database that
//! already holds shared state rather than mixing two.

use std::str::FromStr;

use postgres::{Client, NoTls};

use super::ops::{self, Op};
use super::pg::{chain, create_schema};
use super::HaConfig;
use crate::silence::Silences;
use crate::state::StateDb;

/// What was moved.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Migrated {
    pub nflog: usize,
    pub silences: usize,
    pub acks: usize,
    pub shelves: usize,
    pub notes: usize,
    pub action_keys: usize,
}

/// Moves `db` into the database `cfg` names, as replica `cfg.replica` (whose own operations it
/// then does not apply twice).
pub fn migrate(
    db: &StateDb,
    cfg: &HaConfig,
    clock: std::sync::Arc<dyn tocsin_model::Clock>,
) -> Result<Migrated, String> {
    let now = clock.now_ms();
    let mut out = Migrated::default();
    let mut op_list: Vec<(String, Op)> = Vec::new();
    let me = cfg.replica.clone();
    // Expired silences are kept too: they are history people look up.
    let silences = Silences::new(Some(db.clone()), clock).map_err(|e| e.to_string())?;
    for (s, _) in silences.list() {
        op_list.push((me.clone(), crate::silence::shared_op(&s)));
        out.silences += 1;
    }
    type AckRow = (i64, String, String, i64, i64);
    let acks: Vec<AckRow> = db
        .with_conn(|c| {
            let mut st = c.prepare(
                "SELECT fingerprint, acked_by, comment, acked_at, expires_at FROM alert_acks",
            )?;
            let rows = st.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
            rows.collect()
        })
        .map_err(|e| e.to_string())?;
    for (fp, by, comment, at, expires) in acks {
        op_list.push((
            me.clone(),
            Op::Ack {
                fingerprint: fp as u64,
                by,
                comment,
                expires_at: (expires > 0).then_some(expires),
                at,
            },
        ));
        out.acks += 1;
    }
    let shelves: Vec<AckRow> = db
        .with_conn(|c| {
            let mut st = c.prepare(
                "SELECT fingerprint, shelved_by, comment, shelved_at, until FROM alert_shelves
                 WHERE until > ?1",
            )?;
            let rows = st.query_map([now], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
            rows.collect()
        })
        .map_err(|e| e.to_string())?;
    for (fp, by, comment, at, until) in shelves {
        op_list.push((
            me.clone(),
            Op::Shelve {
                fingerprint: fp as u64,
                by,
                comment,
                until,
                at,
            },
        ));
        out.shelves += 1;
    }
    let notes: Vec<(i64, i64, String, String)> = db
        .with_conn(|c| {
            let mut st = c.prepare(
                "SELECT fingerprint, at, actor, text FROM alert_events WHERE kind = 'note'
                 ORDER BY id",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            rows.collect()
        })
        .map_err(|e| e.to_string())?;
    for (fp, at, by, text) in notes {
        op_list.push((
            me.clone(),
            Op::Note {
                fingerprint: fp as u64,
                by,
                text,
                at,
            },
        ));
        out.notes += 1;
    }
    type NflogRow = (String, String, String, String, i64, i64);
    let nflog: Vec<NflogRow> = db
        .with_conn(|c| {
            let mut st = c.prepare(
                "SELECT receiver, group_key, firing, resolved, sent_at, expires_at FROM nflog
                 WHERE expires_at > ?1",
            )?;
            let rows = st.query_map([now], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?;
            rows.collect()
        })
        .map_err(|e| e.to_string())?;
    let keys: Vec<(String, i64)> = db
        .with_conn(|c| {
            let mut st = c.prepare("SELECT key, created_at FROM action_executions")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .map_err(|e| e.to_string())?;

    let mut pg = postgres::Config::from_str(&cfg.postgres).map_err(|e| e.to_string())?;
    if let Some(p) = &cfg.password {
        pg.password(p);
    }
    let mut c: Client = pg
        .connect(NoTls)
        .map_err(|e| format!("connecting to PostgreSQL: {}", chain(&e)))?;
    create_schema(&mut c).map_err(|e| chain(&e))?;
    let pe = |e: postgres::Error| chain(&e);
    let mut tx = c.transaction().map_err(pe)?;
    let held: i64 = tx
        .query_one(
            "SELECT (SELECT count(*) FROM tocsin_ha_ops) + (SELECT count(*) FROM tocsin_ha_nflog)",
            &[],
        )
        .map_err(pe)?
        .get(0);
    if held > 0 {
        return Err(format!(
            "the database already holds shared alert state ({held} rows in tocsin_ha_ops and \
             tocsin_ha_nflog); migrate into an empty database, or drop those tables first"
        ));
    }
    for (receiver, group, firing, resolved, sent_at, expires_at) in &nflog {
        tx.execute(
            "INSERT INTO tocsin_ha_nflog
                 (receiver, group_key, firing, resolved, sent_at, expires_at, sent_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[receiver, group, firing, resolved, sent_at, expires_at, &me],
        )
        .map_err(pe)?;
    }
    out.nflog = nflog.len();
    for (key, at) in &keys {
        tx.execute(
            "INSERT INTO tocsin_ha_action_claims (key, replica, at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO NOTHING",
            &[key, &me, at],
        )
        .map_err(pe)?;
    }
    out.action_keys = keys.len();
    for chunk in op_list.chunks(1000) {
        ops::insert_in(&mut tx, chunk).map_err(pe)?;
    }
    tx.commit().map_err(pe)?;
    Ok(out)
}
