//! The receiver integration behind `action_configs: [{policy: NAME}]`: the alert manager's
//! pipeline hands it each flush of the groups routed to the receiver (after silences,
//! inhibition and time intervals), and it hands the alerts to the engine, which claims one
//! execution per alert. It asks for every flush rather than the notification log's
//! deduplicated view, because the journal is the deduplication here: an alert that resolved
//! and fired again between two flushes has a new start, so a new execution, which the log
//! (keyed by fingerprints) would hide.

use std::sync::Arc;

use tocsin_alerts::notify::{BoxFuture, Notifier, NotifyCx, NotifyError, Reason};
use tocsin_model::Alert;

use crate::engine::Engine;

pub struct ActionNotifier {
    pub engine: Arc<Engine>,
    pub policy: String,
}

impl Notifier for ActionNotifier {
    fn integration(&self) -> &'static str {
        "action"
    }

    fn send_resolved(&self) -> bool {
        // The engine keeps what its policy's `on` asks for.
        true
    }

    fn every_flush(&self) -> bool {
        true
    }

    fn notify<'a>(
        &'a self,
        _cx: &'a NotifyCx,
        alerts: &'a [Alert],
    ) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move {
            if alerts.is_empty() {
                return Ok(());
            }
            self.engine
                .submit(&self.policy, alerts)
                .map(|_| ())
                .map_err(|e| NotifyError {
                    // A journal write that failed may work next time; the flush is retried.
                    retryable: true,
                    reason: Reason::Other,
                    message: format!("action policy {:?}: {e}", self.policy),
                })
        })
    }
}
