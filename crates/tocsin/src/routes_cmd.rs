//! `tocsin routes show` and `tocsin routes test`: the alert manager's routing tree and where an
//! alert with given labels goes, for configs amtool cannot read (Tocsin's own receivers), in the
//! spirit of `amtool config routes`. The tree comes from a tocsin.yml (`--config`, its
//! `alertmanager:` section) or a bare alertmanager.yml (`--alertmanager.config`).

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use tocsin_alerts::matchers::matchers_string;
use tocsin_alerts::route::{GroupBy, RouteTree};
use tocsin_alerts::AmConfig;
use tocsin_model::{Labels, LabelsBuilder};

#[derive(Subcommand)]
pub enum RoutesCmd {
    /// Print the routing tree.
    Show(Source),
    /// Print the receivers an alert with LABELS (`name=value ...`) reaches, comma-separated.
    Test(TestArgs),
}

#[derive(Args)]
pub struct Source {
    /// tocsin.yml whose `alertmanager:` section (inline or `file:`) holds the routes.
    #[arg(long, conflicts_with = "am_config")]
    config: Option<PathBuf>,
    /// A bare alertmanager.yml instead.
    #[arg(long = "alertmanager.config", visible_alias = "alertmanager-config")]
    am_config: Option<PathBuf>,
}

#[derive(Args)]
pub struct TestArgs {
    #[command(flatten)]
    source: Source,
    /// Also print the routes the alert matched, as a tree.
    #[arg(long)]
    tree: bool,
    /// Exit 1 unless the receivers are exactly these (comma-separated, in order).
    #[arg(long = "verify.receivers", visible_alias = "verify-receivers")]
    verify: Option<String>,
    /// The alert's labels, `name=value` (value optionally in double quotes).
    #[arg(required = true)]
    labels: Vec<String>,
}

fn load(src: &Source) -> anyhow::Result<AmConfig> {
    match (&src.config, &src.am_config) {
        (_, Some(f)) => AmConfig::load_file(f).map_err(|e| anyhow::anyhow!("{e}")),
        (Some(f), None) => Ok(tocsin_server::Config::load_file(f)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .am),
        (None, None) => bail!("give --config tocsin.yml or --alertmanager.config alertmanager.yml"),
    }
}

/// `name=value` pairs into a label set; names must be valid label names.
pub fn parse_labels(args: &[String]) -> anyhow::Result<Labels> {
    let mut b = LabelsBuilder::new();
    for a in args {
        let Some((n, v)) = a.split_once('=') else {
            bail!("{a:?}: expected name=value");
        };
        let n = n.trim();
        if let Err(e) = tocsin_model::labels::validate_label_name(n) {
            bail!("{a:?}: {e}");
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|x| x.strip_suffix('"'))
            .unwrap_or(v);
        b.set(n, v);
    }
    Ok(b.build())
}

pub fn run(cmd: RoutesCmd) -> anyhow::Result<std::process::ExitCode> {
    match cmd {
        RoutesCmd::Show(src) => {
            let tree = RouteTree::from_config(&load(&src)?).context("building the routing tree")?;
            print!("{}", render(&tree, None));
            Ok(std::process::ExitCode::SUCCESS)
        }
        RoutesCmd::Test(a) => {
            let tree =
                RouteTree::from_config(&load(&a.source)?).context("building the routing tree")?;
            let labels = parse_labels(&a.labels)?;
            let matched = tree.matches(&labels);
            let receivers: Vec<&str> = matched.iter().map(|r| r.receiver.as_str()).collect();
            if a.tree {
                let on: Vec<usize> = matched.iter().map(|r| r.index).collect();
                print!("{}", render(&tree, Some(&on)));
            }
            println!("{}", receivers.join(","));
            if let Some(want) = a.verify {
                let want: Vec<&str> = want.split(',').map(str::trim).collect();
                if want != receivers {
                    eprintln!(
                        "WARNING: expected receivers {:?}, got {:?}",
                        want.join(","),
                        receivers.join(",")
                    );
                    return Ok(std::process::ExitCode::FAILURE);
                }
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

/// The tree, one node per line; with `only`, just the matched nodes and their ancestors.
fn render(tree: &RouteTree, only: Option<&[usize]>) -> String {
    let keep = |i: usize| -> bool {
        let Some(on) = only else { return true };
        // A node is kept when it or one of its descendants matched.
        on.iter().any(|&m| {
            let mut cur = Some(m);
            while let Some(c) = cur {
                if c == i {
                    return true;
                }
                cur = tree.get(c).and_then(|r| r.parent);
            }
            false
        })
    };
    let mut out = String::from("Routing tree:\n");
    fn node(
        tree: &RouteTree,
        i: usize,
        prefix: &str,
        last: bool,
        keep: &dyn Fn(usize) -> bool,
        out: &mut String,
    ) {
        let Some(r) = tree.get(i) else { return };
        let what = if r.parent.is_none() {
            "default-route".to_string()
        } else {
            matchers_string(&r.matchers)
        };
        let mut line = format!("{what}  receiver: {}", r.receiver);
        if let GroupBy::Labels(g) = &r.group_by {
            if !g.is_empty() {
                let g: Vec<&str> = g.iter().map(String::as_str).collect();
                let _ = write!(line, "  group_by: [{}]", g.join(", "));
            }
        } else {
            line.push_str("  group_by: [...]");
        }
        if r.continue_ {
            line.push_str("  continue: true");
        }
        let _ = writeln!(out, "{prefix}{}{line}", if last { "└── " } else { "├── " });
        let child_prefix = format!("{prefix}{}", if last { "    " } else { "│   " });
        let kids: Vec<usize> = r.children.iter().copied().filter(|&c| keep(c)).collect();
        for (n, c) in kids.iter().enumerate() {
            node(tree, *c, &child_prefix, n + 1 == kids.len(), keep, out);
        }
    }
    node(tree, 0, "", true, &keep, &mut out);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const AM: &str = r#"
route:
  receiver: default
  group_by: [alertname]
  routes:
  - matchers: ['service=~"foo|bar"']
    receiver: team-x
    routes:
    - matchers: [severity="critical"]
      receiver: team-x-pager
  - matchers: [service="db"]
    receiver: db
    continue: true
  - matchers: [owner="y"]
    receiver: team-y
receivers:
- name: default
- name: team-x
- name: team-x-pager
- name: db
- name: team-y
"#;

    fn tree() -> RouteTree {
        RouteTree::from_config(&AmConfig::parse(AM, "am.yml").unwrap()).unwrap()
    }

    #[test]
    fn show_draws_every_node_with_its_receiver() {
        let got = render(&tree(), None);
        assert_eq!(
            got,
            "Routing tree:
└── default-route  receiver: default  group_by: [alertname]
    ├── {service=~\"foo|bar\"}  receiver: team-x  group_by: [alertname]
    │   └── {severity=\"critical\"}  receiver: team-x-pager  group_by: [alertname]
    ├── {service=\"db\"}  receiver: db  group_by: [alertname]  continue: true
    └── {owner=\"y\"}  receiver: team-y  group_by: [alertname]
"
        );
    }

    #[test]
    fn test_lists_receivers_in_route_order() {
        let t = tree();
        let l = parse_labels(&["service=foo".into(), "severity=\"critical\"".into()]).unwrap();
        let r: Vec<String> = t.matches(&l).iter().map(|r| r.receiver.clone()).collect();
        assert_eq!(r, ["team-x-pager"]);
        let l = parse_labels(&["service=db".into(), "owner=y".into()]).unwrap();
        let r: Vec<String> = t.matches(&l).iter().map(|r| r.receiver.clone()).collect();
        assert_eq!(r, ["db", "team-y"]);
        let on: Vec<usize> = t.matches(&l).iter().map(|r| r.index).collect();
        let got = render(&t, Some(&on));
        assert!(!got.contains("team-x"), "{got}");
        assert!(
            got.contains("receiver: db") && got.contains("receiver: team-y"),
            "{got}"
        );
        assert!(parse_labels(&["0bad=x".into()]).is_err());
        assert!(parse_labels(&["novalue".into()]).is_err());
    }
}
