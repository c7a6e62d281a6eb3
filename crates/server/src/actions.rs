//! Wiring of the remediation actions engine: it shares state.db with the alert manager, whose
//! receivers reach it through `action_configs` (the receiver builder below adds an
//! [`ActionNotifier`] per entry), sees the alert manager through [`AmBridge`] (current alerts,
//! and a way in for its own alerts) and answers its PromQL questions (fleet size, target age)
//! through [`PromQuery`] on the server's storage.

use std::path::Path;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use tocsin_actions::{ActionNotifier, Engine};
use tocsin_alerts::ha::Ha;
use tocsin_alerts::manager::ReceiverBuilder;
use tocsin_alerts::notify::{build_receiver, Notifier, ReceiverConfig};
use tocsin_alerts::AlertManager;
use tocsin_model::{Alert, Labels};
use tocsin_promql::Value;
use tocsin_storage::Queryable;

/// The alert manager as the engine sees it. Set once the alert manager exists (it is built
/// after the engine, since its receivers hold the engine).
#[derive(Default)]
pub struct AmBridge(OnceLock<Weak<AlertManager>>);

impl AmBridge {
    pub fn set(&self, am: &Arc<AlertManager>) {
        let _ = self.0.set(Arc::downgrade(am));
    }

    fn am(&self) -> Option<Arc<AlertManager>> {
        self.0.get().and_then(Weak::upgrade)
    }
}

impl tocsin_actions::AlertBridge for AmBridge {
    fn get(&self, fingerprint: u64) -> Option<Alert> {
        self.am().and_then(|am| am.store().get(fingerprint))
    }

    fn muted(&self, labels: &Labels) -> Option<String> {
        let st = self.am()?.muted_by(labels);
        if !st.silenced_by.is_empty() {
            Some(format!("silenced by {}", st.silenced_by.join(", ")))
        } else if !st.inhibited_by.is_empty() {
            Some(format!("inhibited by {}", st.inhibited_by.join(", ")))
        } else {
            None
        }
    }

    fn put(&self, alerts: Vec<Alert>) {
        if let Some(am) = self.am() {
            if let Err(e) = am.put_alerts(alerts) {
                tracing::warn!(error = %e, "the alert manager refused the actions engine's alerts");
            }
        }
    }
}

/// Instant queries on the server's storage.
pub struct PromQuery {
    pub engine: Arc<tocsin_promql::Engine>,
    pub queryable: Arc<dyn Queryable>,
}

impl tocsin_actions::Query for PromQuery {
    fn instant(&self, expr: &str, at_ms: i64) -> Result<Vec<(Labels, f64)>, String> {
        let out = self
            .engine
            .instant(self.queryable.as_ref(), expr, at_ms)
            .map_err(|e| e.to_string())?;
        match out.value {
            Value::Vector(v) => Ok(v.into_iter().map(|s| (s.labels, s.v)).collect()),
            Value::Scalar { v, .. } => Ok(vec![(Labels::empty(), v)]),
            _ => Err("the expression must give an instant vector or a scalar".into()),
        }
    }
}

/// Builds receivers as the alert manager does, plus one action integration per
/// `action_configs` entry.
pub fn receiver_builder(engine: Arc<Engine>) -> ReceiverBuilder {
    Arc::new(move |cfg: &ReceiverConfig, base: &Path| {
        let mut own = cfg.clone();
        own.action_configs.clear();
        let mut out = build_receiver(&own, base)?;
        for a in &cfg.action_configs {
            if !engine.policy_names().contains(&a.policy) {
                return Err(tocsin_alerts::Error::Config(format!(
                    "action_configs: no action policy named {:?}",
                    a.policy
                )));
            }
            out.push(Arc::new(ActionNotifier {
                engine: engine.clone(),
                policy: a.policy.clone(),
            }) as Arc<dyn Notifier>);
        }
        Ok(out)
    })
}

/// The engine behind `/api/v1/actions*`; on a replica (`ha:`), the journal every replica shares
/// (see `tocsin_alerts::ha::actions`), under its ids.
pub struct ActionsApiImpl(pub Arc<Engine>, pub Option<Arc<Ha>>);

type ApiResult<T> = Result<T, tocsin_api::actions::ActionsApiError>;

fn api_err(e: tocsin_actions::Error) -> tocsin_api::actions::ActionsApiError {
    use tocsin_api::actions::ActionsApiError as E;
    match e {
        tocsin_actions::Error::NotFound(m) => E::NotFound(m),
        tocsin_actions::Error::BadData(m)
        | tocsin_actions::Error::Config(m)
        | tocsin_actions::Error::Render(m) => E::BadData(m),
        e => E::Internal(e.to_string()),
    }
}

fn ha_err(e: tocsin_alerts::ha::HaError) -> tocsin_api::actions::ActionsApiError {
    tocsin_api::actions::ActionsApiError::Internal(format!("the shared action journal: {e}"))
}

impl ActionsApiImpl {
    /// An approval or denial of shared execution `id`: made here when this replica owns it,
    /// else handed to its owner.
    fn decide(
        &self,
        ha: &Ha,
        id: i64,
        who: &str,
        comment: &str,
        approve: bool,
    ) -> ApiResult<serde_json::Value> {
        let Some((owner, local, key, mut body)) = ha.action_get(id).map_err(ha_err)? else {
            return Err(tocsin_api::actions::ActionsApiError::NotFound(format!(
                "action execution {id}"
            )));
        };
        if owner == ha.replica() {
            let v = if approve {
                self.0.approve(local, who, comment)
            } else {
                self.0.deny(local, who, comment)
            }
            .map_err(api_err)?;
            mirror_now(&self.0, ha, &[local]);
            return Ok(shared_view(v, id, &owner));
        }
        ha.publish(tocsin_alerts::ha::Op::ActionDecision {
            key,
            approve,
            by: who.to_string(),
            comment: comment.to_string(),
        });
        if let serde_json::Value::Object(m) = &mut body {
            m.insert("forwarded_to".into(), serde_json::Value::from(owner));
        }
        Ok(body)
    }
}

/// A local execution's JSON under its shared id.
fn shared_view(mut v: serde_json::Value, id: i64, replica: &str) -> serde_json::Value {
    if let serde_json::Value::Object(m) = &mut v {
        if let Some(local) = m.insert("id".into(), serde_json::Value::from(id)) {
            m.insert("replica_id".into(), local);
        }
        m.insert("replica".into(), serde_json::Value::from(replica));
    }
    v
}

/// Mirrors local executions `ids` into the shared journal; false when it could not.
pub(crate) fn mirror_now(engine: &Engine, ha: &Ha, ids: &[i64]) -> bool {
    let mut rows = Vec::with_capacity(ids.len());
    for id in ids {
        let Ok(v) = engine.get(*id) else { continue };
        let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
        rows.push(tocsin_alerts::ha::actions::MirroredExecution {
            key: s("key"),
            local_id: *id,
            policy: s("policy"),
            outcome: s("outcome"),
            target: s("target"),
            created_at: v["created_at"].as_i64().unwrap_or(0),
            body: v,
        });
    }
    match ha.mirror_actions(rows) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(error = %e, "executions not mirrored yet");
            false
        }
    }
}

/// Mirrors what changes in this replica's journal, every 300 ms, until aborted.
pub(crate) async fn mirror_loop(engine: Arc<Engine>, ha: Arc<Ha>) {
    let mut after = 0i64;
    loop {
        let (e, h) = (engine.clone(), ha.clone());
        let from = after;
        let res = tokio::task::spawn_blocking(move || -> Option<i64> {
            let (ids, last) = e.changed_since(from).ok()?;
            // In batches, so a large journal (the first round after a start) fits the
            // database's time per call; a failed batch is sent again next round.
            ids.chunks(200)
                .all(|c| mirror_now(&e, &h, c))
                .then_some(last)
        })
        .await;
        if let Ok(Some(last)) = res {
            after = last;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Applies a decision another replica took on an execution this one owns.
pub(crate) fn apply_decision(engine: &Arc<Engine>, op: &tocsin_alerts::ha::Op) -> bool {
    let tocsin_alerts::ha::Op::ActionDecision {
        key,
        approve,
        by,
        comment,
    } = op
    else {
        return false;
    };
    match engine.id_of(key) {
        Ok(Some(id)) => {
            let r = if *approve {
                engine.approve(id, by, comment)
            } else {
                engine.deny(id, by, comment)
            };
            if let Err(e) = r {
                tracing::warn!(key = %key, error = %e, "another replica's decision on an action not applied");
            }
        }
        // Not ours (another replica owns it and applies it).
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(key = %key, error = %e, "another replica's decision on an action not applied")
        }
    }
    true
}

impl tocsin_api::actions::ActionsApi for ActionsApiImpl {
    fn list(&self, q: &tocsin_api::actions::ActionQuery) -> ApiResult<Vec<serde_json::Value>> {
        if let Some(ha) = &self.1 {
            return ha
                .actions_list(&tocsin_alerts::ha::actions::SharedActionQuery {
                    policy: q.policy.clone(),
                    outcome: q.outcome.clone(),
                    target: q.target.clone(),
                    from_ms: q.from_ms,
                    to_ms: q.to_ms,
                    limit: q.limit,
                })
                .map_err(ha_err);
        }
        self.0
            .list(&tocsin_actions::journal::ListQuery {
                policy: q.policy.clone(),
                outcome: q.outcome.clone(),
                target: q.target.clone(),
                from_ms: q.from_ms,
                to_ms: q.to_ms,
                limit: q.limit,
            })
            .map_err(api_err)
    }

    fn get(&self, id: i64) -> ApiResult<serde_json::Value> {
        if let Some(ha) = &self.1 {
            return match ha.action_get(id).map_err(ha_err)? {
                Some((_, _, _, body)) => Ok(body),
                None => Err(tocsin_api::actions::ActionsApiError::NotFound(format!(
                    "action execution {id}"
                ))),
            };
        }
        self.0.get(id).map_err(api_err)
    }

    fn approve(&self, id: i64, who: &str, comment: &str) -> ApiResult<serde_json::Value> {
        if let Some(ha) = &self.1 {
            return self.decide(ha, id, who, comment, true);
        }
        self.0.approve(id, who, comment).map_err(api_err)
    }

    fn deny(&self, id: i64, who: &str, comment: &str) -> ApiResult<serde_json::Value> {
        if let Some(ha) = &self.1 {
            return self.decide(ha, id, who, comment, false);
        }
        self.0.deny(id, who, comment).map_err(api_err)
    }

    fn reset(
        &self,
        policy: &str,
        who: &str,
    ) -> Result<serde_json::Value, tocsin_api::actions::ActionsApiError> {
        self.0.reset(policy, who).map_err(api_err)
    }

    fn policies(&self) -> Result<Vec<serde_json::Value>, tocsin_api::actions::ActionsApiError> {
        Ok(self.0.policies_json())
    }
}
