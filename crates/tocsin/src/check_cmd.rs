//! `tocsin check config`, `tocsin check rules` and `tocsin check web-config`: validate files the way `promtool check`
//! does, printing every problem with its file and line and exiting non-zero on any.

use std::path::{Path, PathBuf};

use clap::Subcommand;

#[derive(Subcommand)]
pub enum CheckCmd {
    /// Validate a configuration file (tocsin.yml / prometheus.yml) and the rule files it names.
    Config { file: PathBuf },
    /// Validate rule files (Prometheus's rule-file format).
    Rules {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Validate web configuration files (`--web.config.file`: TLS, users, tokens, networks),
    /// reading the certificates and token files they name.
    #[command(name = "web-config")]
    WebConfig {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Returns the process exit code: 0 when every file is valid, 1 otherwise.
pub fn run(cmd: CheckCmd) -> anyhow::Result<std::process::ExitCode> {
    let ok = match cmd {
        CheckCmd::Config { file } => check_config(&file),
        CheckCmd::Rules { files } => {
            // Every file is checked and reported, not only up to the first bad one.
            let mut ok = true;
            for f in &files {
                ok &= check_rules(f);
            }
            ok
        }
        CheckCmd::WebConfig { files } => {
            let mut ok = true;
            for f in &files {
                ok &= check_web_config(f);
            }
            ok
        }
    };
    Ok(if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

fn check_rules(file: &Path) -> bool {
    println!("Checking {}", file.display());
    match tocsin_rules::load_file(file) {
        Ok(f) => {
            let n: usize = f.groups.iter().map(|g| g.rules.len()).sum();
            println!("  SUCCESS: {n} rules found");
            true
        }
        Err(e) => {
            println!("  FAILED:");
            for m in e.messages() {
                println!("{m}");
            }
            false
        }
    }
}

/// Loads the file exactly as the server does at start (same checks, same messages), then
/// reports each rule file it names.
fn check_config(file: &Path) -> bool {
    println!("Checking {}", file.display());
    let cfg = match tocsin_server::Config::load_file(file) {
        Ok(c) => c,
        Err(e) => {
            println!("  FAILED:");
            println!("{e}");
            return false;
        }
    };
    for w in &cfg.warnings {
        println!("  WARNING: {w}");
    }
    let base = &tocsin_server::config_dir(Some(file));
    let rule_files =
        tocsin_server::alerting::rule_file_paths(&cfg.rule_files, base).unwrap_or_default();
    println!("  SUCCESS: {} rule files found", rule_files.len());
    let mut ok = true;
    for f in rule_files {
        ok &= check_rules(&f);
    }
    ok
}

fn check_web_config(file: &Path) -> bool {
    println!("Checking {}", file.display());
    match tocsin_server::web::WebConfig::load(file) {
        Ok(cfg) => {
            for w in &cfg.warnings {
                println!("  WARNING: {w}");
            }
            println!("  SUCCESS");
            true
        }
        Err(e) => {
            println!("  FAILED:");
            println!("{e}");
            false
        }
    }
}
