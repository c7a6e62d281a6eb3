//! The action journal as replicas share it (`tocsin_ha_actions`): the replica that claimed an
//! execution mirrors it (the JSON the actions API shows, audit trail included) each time it
//! changes, and every replica's actions API lists and shows executions from here, under ids of
//! this table, so that an execution run by any replica is seen, approved and denied on all
//! (decisions go to its owner as operations).

use postgres::Client;
use serde_json::Value;

/// One execution as its owner mirrors it.
#[derive(Debug, Clone)]
pub struct MirroredExecution {
    pub key: String,
    pub local_id: i64,
    pub policy: String,
    pub outcome: String,
    pub target: String,
    pub created_at: i64,
    /// The execution as the owner's actions API shows it.
    pub body: Value,
}

/// Filters of a listing (as the actions API's).
#[derive(Debug, Clone, Default)]
pub struct SharedActionQuery {
    pub policy: Option<String>,
    pub outcome: Option<String>,
    pub target: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub limit: usize,
}

/// Where an execution lives: (owner replica, its id there, key, body with the shared id).
pub type Located = (String, i64, String, Value);

pub(crate) fn mirror(
    c: &mut Client,
    replica: &str,
    rows: &[MirroredExecution],
) -> Result<(), postgres::Error> {
    let mut tx = c.transaction()?;
    for r in rows {
        tx.execute(
            "INSERT INTO tocsin_ha_actions
                 (key, replica, local_id, policy, outcome, target, created_at, body)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (key) DO UPDATE SET replica = EXCLUDED.replica,
                 local_id = EXCLUDED.local_id, outcome = EXCLUDED.outcome,
                 body = EXCLUDED.body",
            &[
                &r.key,
                &replica,
                &r.local_id,
                &r.policy,
                &r.outcome,
                &r.target,
                &r.created_at,
                &r.body.to_string(),
            ],
        )?;
    }
    tx.commit()
}

/// The body with the shared id, and where it runs.
fn shown(id: i64, replica: &str, body: &str) -> Value {
    let mut v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        if let Some(local) = m.insert("id".into(), Value::from(id)) {
            m.insert("replica_id".into(), local);
        }
        m.insert("replica".into(), Value::from(replica));
    }
    v
}

pub(crate) fn list(c: &mut Client, q: &SharedActionQuery) -> Result<Vec<Value>, postgres::Error> {
    let limit = q.limit.min(i64::MAX as usize) as i64;
    let rows = c.query(
        "SELECT id, replica, body FROM tocsin_ha_actions
         WHERE ($1::TEXT IS NULL OR policy = $1) AND ($2::TEXT IS NULL OR outcome = $2)
           AND ($3::TEXT IS NULL OR target = $3)
           AND ($4::BIGINT IS NULL OR created_at >= $4) AND ($5::BIGINT IS NULL OR created_at <= $5)
         ORDER BY created_at DESC, id DESC LIMIT $6",
        &[
            &q.policy, &q.outcome, &q.target, &q.from_ms, &q.to_ms, &limit,
        ],
    )?;
    Ok(rows
        .iter()
        .map(|r| {
            let mut v = shown(r.get(0), r.get(1), r.get(2));
            // Listings carry no audit trail, as the local listing.
            if let Value::Object(m) = &mut v {
                m.remove("events");
            }
            v
        })
        .collect())
}

pub(crate) fn get(c: &mut Client, id: i64) -> Result<Option<Located>, postgres::Error> {
    let row = c.query_opt(
        "SELECT replica, local_id, key, body FROM tocsin_ha_actions WHERE id = $1",
        &[&id],
    )?;
    Ok(row.map(|r| {
        let replica: String = r.get(0);
        let body = shown(id, &replica, r.get(3));
        (replica, r.get(1), r.get(2), body)
    }))
}

pub(crate) fn id_of(c: &mut Client, key: &str) -> Result<Option<i64>, postgres::Error> {
    Ok(
        c.query_opt("SELECT id FROM tocsin_ha_actions WHERE key = $1", &[&key])?
            .map(|r| r.get(0)),
    )
}
