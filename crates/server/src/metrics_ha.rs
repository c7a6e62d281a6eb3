//! `/metrics` families of a replica (`ha:`): whether it sends, whether it reaches PostgreSQL,
//! takeovers, fenced writes and the operations it shares and applies.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType::{Counter, Gauge};

pub(crate) struct Metrics(pub Arc<tocsin_alerts::ha::Ha>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ha::Metrics({})", self.0.replica())
    }
}

impl Collector for Metrics {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let ha = &self.0;
        let m = &ha.metrics;
        let l = vec![("replica".to_string(), ha.replica().to_string())];
        let gauges: [(&str, &str, f64); 3] = [
            (
                "tocsin_ha_sender",
                "1 while this replica holds the sender lease and sends notifications.",
                f64::from(u8::from(ha.is_sender())),
            ),
            (
                "tocsin_ha_database_up",
                "1 while PostgreSQL answered within the takeover time.",
                f64::from(u8::from(ha.db_up())),
            ),
            (
                "tocsin_ha_ops_queued",
                "Operations (silences, acknowledgements, notes) waiting for PostgreSQL.",
                ha.queued_ops() as f64,
            ),
        ];
        for (name, help, v) in gauges {
            crate::metrics::family(&mut e, name, help, Gauge, &[(l.clone(), v)])?;
        }
        let counters = [
            (
                "tocsin_ha_takeovers",
                "Times this replica took the sender lease.",
                &m.takeovers,
            ),
            (
                "tocsin_ha_lease_losses",
                "Times this replica lost the sender lease.",
                &m.lease_losses,
            ),
            (
                "tocsin_ha_ops_published",
                "Operations made here and shared with the other replicas.",
                &m.ops_published,
            ),
            (
                "tocsin_ha_ops_applied",
                "Other replicas' operations applied here.",
                &m.ops_applied,
            ),
            (
                "tocsin_ha_ops_apply_failed",
                "Other replicas' operations that could not be applied here (logged).",
                &m.ops_apply_failed,
            ),
            (
                "tocsin_ha_nflog_fenced",
                "Notification-log writes refused because this replica had lost the lease.",
                &m.nflog_fenced,
            ),
            (
                "tocsin_ha_db_errors",
                "Failed connections to PostgreSQL.",
                &m.db_errors,
            ),
            (
                "tocsin_ha_actions_claimed_elsewhere",
                "Action executions not run here because another replica claimed them.",
                &m.actions_claimed_elsewhere,
            ),
        ];
        for (name, help, c) in counters {
            crate::metrics::family(
                &mut e,
                name,
                help,
                Counter,
                &[(l.clone(), c.load(Ordering::Relaxed) as f64)],
            )?;
        }
        Ok(())
    }
}
