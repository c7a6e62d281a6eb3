//! Wiring of the remediation actions engine: it shares state.db with the alert manager, whose
//! receivers reach it through `action_configs` (the receiver builder below adds an
//! [`ActionNotifier`] per entry), sees the alert manager through [`AmBridge`] (current alerts,
//! and a way in for its own alerts) and answers its PromQL questions (fleet size, target age)
//! through [`PromQuery`] on the server's storage.

use std::path::Path;
use std::sync::{Arc, OnceLock, Weak};

use tocsin_actions::{ActionNotifier, Engine};
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

/// The engine behind `/api/v1/actions*`.
pub struct ActionsApiImpl(pub Arc<Engine>);

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

impl tocsin_api::actions::ActionsApi for ActionsApiImpl {
    fn list(
        &self,
        q: &tocsin_api::actions::ActionQuery,
    ) -> Result<Vec<serde_json::Value>, tocsin_api::actions::ActionsApiError> {
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

    fn get(&self, id: i64) -> Result<serde_json::Value, tocsin_api::actions::ActionsApiError> {
        self.0.get(id).map_err(api_err)
    }

    fn approve(
        &self,
        id: i64,
        who: &str,
        comment: &str,
    ) -> Result<serde_json::Value, tocsin_api::actions::ActionsApiError> {
        self.0.approve(id, who, comment).map_err(api_err)
    }

    fn deny(
        &self,
        id: i64,
        who: &str,
        comment: &str,
    ) -> Result<serde_json::Value, tocsin_api::actions::ActionsApiError> {
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
