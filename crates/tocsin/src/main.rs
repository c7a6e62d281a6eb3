//! The `tocsin` command line: `server` runs the monitoring server, `query` evaluates PromQL on a
//! running server, `tsdb` inspects and benchmarks the storage engine.

mod actions_cmd;
mod backtest_cmd;
mod bench;
mod check_cmd;
mod lint_cmd;
mod query_cmd;
mod routes_cmd;
mod state_cmd;
mod test_cmd;
mod tsdb_bench;
mod tsdb_cmd;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc malloc: under series churn the head frees and allocates millions of
/// small objects from several threads, and glibc's per-thread arenas kept that memory resident
/// long after it was freed.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `tocsin --version`: the release, the git revision and when it was built (see build.rs).
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("TOCSIN_GIT_REVISION"),
    ", built ",
    env!("TOCSIN_BUILD_DATE"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "tocsin",
    version = LONG_VERSION,
    about = "Metrics monitoring and alerting in one binary"
)]
struct Cli {
    /// Log level (error, warn, info, debug, trace) or a tracing filter directive.
    #[arg(
        long,
        visible_alias = "log.level",
        global = true,
        default_value = "info",
        env = "TOCSIN_LOG"
    )]
    log_level: String,
    /// Log line format: `text` (human-readable; coloured only when stderr is a terminal and
    /// NO_COLOR is unset) or `json` (one object per line, for log shippers).
    #[arg(
        long = "log.format",
        visible_alias = "log-format",
        global = true,
        default_value = "text",
        value_parser = ["text", "json"]
    )]
    log_format: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Serve many synthetic scrape targets on loopback ports.
    Targets(bench::targets::TargetsArgs),
    /// Send Telegraf-shaped InfluxDB line protocol to a write URL.
    Lineproto(bench::lineproto::LineprotoArgs),
    /// Time PromQL queries in process over a data directory.
    Query(bench::query::QueryArgs),
    /// GET one URL in a closed loop (keep-alive, optional basic auth and CA) and print req/s.
    Http(bench::http::HttpArgs),
    /// Endurance run: mixed load, kill -9 and restart cycles, then a check of every acknowledged
    /// sample and notification (`bench/soak`).
    Soak(bench::soak::SoakArgs),
    /// A simulated fleet of Compute Engine VMs pushing uptime, CPU and processes, some of them
    /// misbehaving; VMs deleted at the Compute API stop reporting (`examples/reactive-fleet`).
    Fleet(bench::vm_fleet::FleetArgs),
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server.
    Server(ServerArgs),
    /// Load generators for the benchmarks in bench/.
    #[command(hide = true, subcommand)]
    Bench(BenchCmd),
    /// Evaluate PromQL on a running server (`query EXPR`, `query range EXPR --start --end --step`).
    Query(query_cmd::QueryArgs),
    /// Validate configuration and rule files (`check config FILE`, `check rules FILE...`).
    Check {
        #[command(subcommand)]
        cmd: check_cmd::CheckCmd,
    },
    /// Diagnose the configuration and rule files: alerts that can never reach anyone, template
    /// labels the expression drops, duplicate rules... (see README "Lint"). Exit 0 nothing failed,
    /// 1 an ERR or SEC rule failed, 2 lint could not run.
    Lint(lint_cmd::LintArgs),
    /// Show the alert manager's routing tree, or test where an alert goes (`routes show`,
    /// `routes test name=value...`), as amtool's `config routes` does.
    Routes {
        #[command(subcommand)]
        cmd: routes_cmd::RoutesCmd,
    },
    /// Remediation actions of a running server: `actions list|show|approve|deny|reset|policies`.
    Actions {
        #[command(subcommand)]
        cmd: actions_cmd::ActionsCmd,
    },
    /// Run rule unit tests (`test rules FILE...`, promtool's test-file format).
    Test {
        #[command(subcommand)]
        cmd: test_cmd::TestCmd,
    },
    /// The alert manager's state: `state migrate --to postgres --config FILE` moves state.db into
    /// the database replicas share (the config's `ha:` section).
    State {
        #[command(subcommand)]
        cmd: state_cmd::StateCmd,
    },
    /// Inspect and benchmark the storage engine.
    Tsdb {
        #[command(subcommand)]
        cmd: tsdb_cmd::TsdbCmd,
    },
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Configuration file (tocsin.yml, a prometheus.yml superset). Default: the embedded config.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: String,
    /// Data directory (WAL, blocks, state).
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// Write the bound address to this file once listening (useful with --listen 127.0.0.1:0).
    #[arg(long)]
    listen_addr_file: Option<PathBuf>,
    /// How often storage maintenance (block cutting, compaction, retention) runs.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    maintenance_interval: Duration,
    /// The URL users reach this server at (alerts' generatorURL and links; its origin also counts
    /// as this server's own for the cross-origin check). Default: http://<listen address>.
    #[arg(long, visible_alias = "web.external-url")]
    external_url: Option<String>,
    /// Serve the admin API: delete series, snapshot, clean tombstones (off: they answer 503).
    #[arg(long = "web.enable-admin-api")]
    enable_admin_api: bool,
    /// Serve /-/reload and /-/quit over HTTP (off: they answer 403; SIGHUP reloads either way).
    #[arg(long = "web.enable-lifecycle")]
    enable_lifecycle: bool,
    /// `false` turns self-monitoring off whatever `self_monitoring.enabled` says (for servers
    /// whose storage must hold only what clients wrote, such as tests).
    #[arg(long = "self-monitoring", default_value_t = true, action = clap::ArgAction::Set)]
    self_monitoring: bool,
    /// Web configuration file (Prometheus's web config format): TLS, basic-auth users, response
    /// headers, and Tocsin's bearer tokens, allowed networks and roles. Re-read when it changes.
    #[arg(long = "web.config.file", value_name = "FILE")]
    web_config_file: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    tocsin_model::duration::parse_duration_ms(s).map(|ms| Duration::from_millis(ms.max(0) as u64))
}

fn init_logging(level: &str, format: &str) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Otherwise a log line that cannot be written (stderr redirected to a file on a full
        // disk) is reported with eprintln!, which panics the thread that logged: the storage
        // maintenance thread died that way and never cut a block again.
        .log_internal_errors(false);
    if format == "json" {
        b.json().with_current_span(false).init();
    } else {
        // Escape codes in a file or a journal make the log unreadable and ungreppable.
        let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        b.with_ansi(colour).init();
    }
}

fn main() -> std::process::ExitCode {
    tocsin_model::build::set(tocsin_model::build::BuildInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        revision: env!("TOCSIN_GIT_REVISION").to_string(),
        branch: env!("TOCSIN_GIT_BRANCH").to_string(),
        date: env!("TOCSIN_BUILD_DATE").to_string(),
    });
    let cli = Cli::parse();
    init_logging(&cli.log_level, &cli.log_format);
    // The flag is checked when pages are faulted in, so arenas mapped before main are covered.
    disable_transparent_huge_pages();
    purge_freed_memory_at_once();
    use std::process::ExitCode;
    let done = |r: anyhow::Result<()>| r.map(|()| ExitCode::SUCCESS);
    let res: anyhow::Result<ExitCode> = match cli.cmd {
        // These decide their own exit code (1 when a checked file or test fails).
        Cmd::Check { cmd } => check_cmd::run(cmd),
        Cmd::Routes { cmd } => routes_cmd::run(cmd),
        Cmd::Lint(a) => Ok(lint_cmd::run(a)),
        Cmd::Actions { cmd } => actions_cmd::run(cmd),
        Cmd::Test { cmd } => test_cmd::run(cmd),
        Cmd::Server(a) => done(run_server(a)),
        Cmd::Query(a) => done(query_cmd::run(a)),
        Cmd::Tsdb { cmd } => done(tsdb_cmd::run(cmd)),
        Cmd::State { cmd } => done(state_cmd::run(cmd)),
        Cmd::Bench(BenchCmd::Targets(a)) => done(bench::targets::run(a)),
        Cmd::Bench(BenchCmd::Lineproto(a)) => done(bench::lineproto::run(a)),
        Cmd::Bench(BenchCmd::Query(a)) => done(bench::query::run(a)),
        Cmd::Bench(BenchCmd::Http(a)) => done(bench::http::run(a)),
        Cmd::Bench(BenchCmd::Soak(a)) => bench::soak::run(a),
        Cmd::Bench(BenchCmd::Fleet(a)) => done(bench::vm_fleet::run(a)),
    };
    res.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })
}

/// mimalloc asks for transparent huge pages on its arenas. The head's memory is millions of small
/// objects with different lifetimes, so a 2 MiB page stays resident while any of it is in use and
/// freed ranges inside it cannot be returned: measured on 100k series over remote write, resident
/// memory was 30% higher with them (275 MB against 205 MB for 115 MB of live heap).
fn disable_transparent_huge_pages() {
    // SAFETY: prctl with PR_SET_THP_DISABLE only sets a flag on this process; it takes no pointers.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc != 0 {
        // Old kernels lack the option; huge pages then cost memory, nothing else.
        tracing::debug!(
            "PR_SET_THP_DISABLE failed: {}",
            std::io::Error::last_os_error()
        );
    }
}

extern "C" {
    /// mimalloc's option setter; the library is linked in by the `mimalloc` crate.
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc 3's option enum.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// mimalloc returns freed pages to the OS after a delay (10 ms by default), which under ingest
/// keeps a standing pool of freed-but-resident pages: purging at once lowered resident memory by
/// 10% (161 MB to 146 MB for 100k series and 2 h of data over remote write); the extra madvise
/// calls are inside the CPU per sample that bench/compare-peers reports.
fn purge_freed_memory_at_once() {
    // SAFETY: sets an integer option; mimalloc reads options atomically.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

fn run_server(a: ServerArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(tocsin_server::run(tocsin_server::ServerOptions {
        config_file: a.config,
        listen: a.listen,
        data_dir: a.data_dir,
        listen_addr_file: a.listen_addr_file,
        maintenance_interval: a.maintenance_interval,
        external_url: a.external_url,
        enable_admin_api: a.enable_admin_api,
        self_monitoring: a.self_monitoring,
        enable_lifecycle: a.enable_lifecycle,
        web_config_file: a.web_config_file,
    }))?;
    Ok(())
}
