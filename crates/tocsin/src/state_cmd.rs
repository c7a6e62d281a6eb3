//! `tocsin state migrate --to postgres`: moves a single node's alert state (`<data>/state.db`)
//! into the PostgreSQL database that the config's `ha:` section names, so the node can become
//! the first of several replicas. Run it with the server stopped.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum StateCmd {
    /// Move state.db into the shared database of replicas (the config's `ha:` section).
    Migrate {
        /// Where to: `postgres` (the only target).
        #[arg(long)]
        to: String,
        /// The configuration whose `ha:` section names the database and this replica.
        #[arg(long)]
        config: PathBuf,
        /// The data directory holding state.db.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
    },
}

pub fn run(cmd: StateCmd) -> anyhow::Result<()> {
    let StateCmd::Migrate {
        to,
        config,
        data_dir,
    } = cmd;
    if to != "postgres" {
        bail!("--to {to:?}: the one target is `postgres`");
    }
    let cfg = tocsin_server::Config::load_file(&config)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("loading {}", config.display()))?;
    let Some(mut ha) = cfg.ha.clone() else {
        bail!(
            "{}: no `ha:` section; it names the PostgreSQL database and this replica",
            config.display()
        );
    };
    let base = tocsin_server::config_dir(Some(&config));
    if let Some((f, m)) = ha.validate(&base).pop() {
        bail!("{}: {f}: {m}", config.display());
    }
    let path = data_dir.join("state.db");
    if !path.exists() {
        bail!("{}: no such file (is --data-dir right?)", path.display());
    }
    let db = tocsin_alerts::state::StateDb::open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let m = tocsin_alerts::ha::migrate::migrate(&db, &ha, Arc::new(tocsin_model::SystemClock))
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("migrating")?;
    println!(
        "migrated {} into PostgreSQL as replica {:?}: {} notification log entries, {} silences, \
         {} acknowledgements, {} shelves, {} notes, {} action execution keys",
        path.display(),
        ha.replica,
        m.nflog,
        m.silences,
        m.acks,
        m.shelves,
        m.notes,
        m.action_keys
    );
    Ok(())
}
