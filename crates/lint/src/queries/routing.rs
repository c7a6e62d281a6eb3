//! The built-in alert manager's routing tree, built with the alert manager's own code so lint
//! routes an alert exactly as the server would.

use tocsin_alerts::notify::ReceiverConfig;
use tocsin_alerts::route::RouteTree;
use tocsin_alerts::AmConfig;

pub struct Routing {
    pub config: AmConfig,
    /// The error building the tree, when the routes do not build.
    pub tree: Result<RouteTree, String>,
}

impl Routing {
    pub fn build(cfg: &AmConfig) -> Routing {
        Routing {
            config: cfg.clone(),
            tree: RouteTree::from_config(cfg).map_err(|e| e.to_string()),
        }
    }

    /// Whether the receiver named `name` delivers anywhere (a notifier or a remediation
    /// policy); a receiver with none only swallows alerts.
    pub fn receiver_sends(&self, name: &str) -> bool {
        self.config.receiver(name).is_some_and(sends)
    }
}

fn sends(r: &ReceiverConfig) -> bool {
    let counts = [
        r.webhook_configs.len(),
        r.pubsub_configs.len(),
        r.alerta_configs.len(),
        r.exec_configs.len(),
        r.file_configs.len(),
        r.heartbeat_configs.len(),
        r.email_configs.len(),
        r.pagerduty_configs.len(),
        r.slack_configs.len(),
        r.opsgenie_configs.len(),
        r.msteams_configs.len(),
        r.msteamsv2_configs.len(),
        r.telegram_configs.len(),
        r.discord_configs.len(),
        r.action_configs.len(),
    ];
    counts.iter().any(|&n| n > 0)
}
