//! `check`: model-check a Raft model and print a verdict per property, with the shortest trace
//! of every violation; or run a check suite; or serve the state-space explorer.
//!
//! Exit status: 0 when no always/eventually property is violated (for a suite: every expectation
//! met), 1 when one is, 2 for bad usage or a bad model or suite file.

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use raft_checked::check::explorer::{self, Explorer};
use raft_checked::check::html;
use raft_checked::check::load;
use raft_checked::check::runner::{self, CheckerKind, RunOptions};
use raft_checked::check::suite;
use raft_checked::check::unbounded;
use raft_checked::model::{spec, RaftModel};
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// The checker allocates and frees millions of small states; glibc's allocator spent nearly
/// half the time in malloc/free on the default model.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "check",
    version,
    about = "Model-check Raft: every interleaving of messages, timeouts, drops and crashes, within bounds"
)]
struct Args {
    /// A model name under models/ (e.g. `default`, `bugs/figure8`) or a path to a model file.
    #[arg(default_value = "default")]
    model: String,
    /// `bfs` (this crate's: shortest traces, liveness), `dfs` (this crate's, single-threaded), or
    /// stateright's `simulation`.
    #[arg(long, value_enum, default_value_t = CheckerKind::Bfs)]
    checker: CheckerKind,
    /// Worker threads of the checker.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=256))]
    threads: u64,
    /// Check only this property (repeatable), e.g. --property "Election Safety".
    #[arg(long = "property", value_name = "NAME")]
    properties: Vec<String>,
    /// Do not check liveness (no graph is recorded: less memory, a little faster).
    #[arg(long)]
    no_liveness: bool,
    /// Check paths of up to this many steps, and go no deeper (the search is then not complete).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    depth: Option<u64>,
    /// Stop after this many unique states (the search is then not complete).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_states: Option<u64>,
    /// Seed of the simulation checker's swarm: the same seed, the same walks and verdicts.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Simulation: stop after this many random walks.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    walks: Option<u64>,
    /// Simulation: run only walk W of the seed's swarm (as a report names it), to replay it.
    #[arg(long, value_name = "W")]
    walk: Option<u64>,
    /// Symmetry reduction over server ids (models without clients only); on by itself for a
    /// model that declares `symmetry = true`.
    #[arg(long)]
    symmetry: bool,
    /// No symmetry reduction, even for a model that declares `symmetry = true`.
    #[arg(long, conflicts_with = "symmetry")]
    no_symmetry: bool,
    /// The search stops (not complete) when the process reaches this many MiB (default: 80% of
    /// RAM).
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    max_memory: Option<u64>,
    /// Stop after this many seconds (the search is then not complete).
    #[arg(long)]
    timeout: Option<f64>,
    /// Print exactly one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Serve the state-space explorer (default 127.0.0.1:3000; port 0 picks a free one, and the
    /// printed URL says which): the model's states, its counterexamples and verdicts computed on
    /// each state. --threads, --property, --no-liveness, --no-symmetry, --max-states,
    /// --max-memory and --timeout apply to the search that finds the counterexamples; other
    /// check flags are refused.
    #[arg(long, num_args = 0..=1, default_missing_value = "127.0.0.1:3000", value_name = "ADDR")]
    explore: Option<String>,
    /// Run a check suite (e.g. checks/ci.toml) instead of one model.
    #[arg(long, value_name = "FILE")]
    suite: Option<PathBuf>,
    /// Under each step of a printed trace, list the messages in flight after it (JSON traces
    /// always carry them, as `in_flight`).
    #[arg(long)]
    show_network: bool,
    /// Write every violated property's trace as a sequence diagram to FILE: one SVG document,
    /// the diagrams stacked in report order. Nothing is written when no property is violated
    /// (stderr says so); the exit status is the check's, or 2 if FILE cannot be written.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["suite", "explore"])]
    svg: Option<PathBuf>,
    /// Write the report to FILE as one self-contained HTML page (inline SVG and CSS, nothing
    /// fetched): verdicts, figures, and each violated property's trace as diagram and table.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["suite", "explore"])]
    html: Option<PathBuf>,
    /// Validate a real run against the model instead of checking one: the `node --trace` files
    /// of every node of the run, merged in an order consistent with causality and replayed
    /// through the model's transitions and always properties. Exit 0 valid, 1 invalid (the
    /// first event the model cannot take, or the first property broken: node, file, line), 2
    /// bad input. Example: check --validate-trace run/trace-0.jsonl run/trace-1.jsonl run/trace-2.jsonl
    #[arg(long, value_name = "FILE", num_args = 1.., conflicts_with_all = ["suite", "explore", "svg", "html"])]
    validate_trace: Vec<PathBuf>,
}

fn main() -> ExitCode {
    raft_checked::net::quiet_broken_pipe();
    let matches = Args::command().get_matches();
    let args = match Args::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    if args.explore.is_some() {
        if let Some(msg) = explore_refusal(&args, &matches) {
            eprintln!("check: {msg}");
            return ExitCode::from(2);
        }
    }
    match run(args) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("check: {msg}");
            ExitCode::from(2)
        }
    }
}

/// `--validate-trace`: says whether the run's traces are one the model can make.
fn validate_trace(paths: &[PathBuf], json: bool) -> Result<ExitCode, String> {
    let verdict = raft_checked::check::validate::validate(paths)?;
    if json {
        let problem = verdict.problem.as_ref().map(
            |p| serde_json::json!({"node": p.node, "file": p.file, "line": p.line, "why": p.why}),
        );
        let out = serde_json::json!({
            "valid": verdict.problem.is_none(),
            "nodes": verdict.nodes,
            "events": verdict.events,
            "problem": problem,
        });
        println!("{out}");
    } else {
        match &verdict.problem {
            None => println!(
                "valid: {} events of {} nodes replayed through the model; every always \
                 property held",
                verdict.events, verdict.nodes
            ),
            Some(p) => println!(
                "invalid: node {} ({}:{}), after {} events: {}",
                p.node,
                p.file.display(),
                p.line,
                verdict.events,
                p.why
            ),
        }
    }
    Ok(match verdict.problem {
        None => ExitCode::SUCCESS,
        Some(_) => ExitCode::from(1),
    })
}

fn run(args: Args) -> Result<ExitCode, String> {
    if let Some(t) = args.timeout {
        if !(t.is_finite() && t > 0.0) {
            return Err(format!(
                "--timeout {t}: must be a positive number of seconds"
            ));
        }
    }
    if !args.validate_trace.is_empty() {
        return validate_trace(&args.validate_trace, args.json);
    }
    if let Some(path) = &args.suite {
        let entries = suite::load(path).map_err(|e| e.to_string())?;
        let rows = suite::run(&entries);
        print!("{}", suite::render(&rows));
        return Ok(if rows.iter().all(|r| r.ok) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let cfg = load::load(&args.model).map_err(|e| e.to_string())?;
    let opts = RunOptions {
        checker: args.checker,
        threads: args.threads as usize,
        depth: args.depth.map(|d| d as usize),
        max_states: args.max_states.map(|m| m as usize),
        seed: args.seed,
        timeout: args.timeout.map(Duration::from_secs_f64),
        symmetry: args.symmetry,
        no_symmetry: args.no_symmetry,
        max_memory_bytes: args.max_memory.map(|m| m * 1024 * 1024),
        progress: !args.json,
        properties: args.properties.clone(),
        liveness: !args.no_liveness,
        walks: args.walks,
        walk: args.walk,
    };
    runner::check_options(&cfg, &opts)?;
    if let Some(addr) = &args.explore {
        let opts = RunOptions {
            progress: false,
            ..opts
        };
        return explore(cfg, addr, opts);
    }
    // A depth limit bounds the search whatever the model; else say which bound is missing.
    if opts.depth.is_none() {
        for warning in unbounded::warnings(&cfg) {
            eprintln!("check: warning: {warning}");
        }
    }
    let report = runner::run(&cfg, &opts);
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).expect("reports serialize")
        );
    } else {
        let description = &cfg.file.description;
        print!(
            "{}",
            runner::render_with(&report, description, args.show_network)
        );
    }
    write_figures(&args, &cfg, &report)?;
    Ok(if report.has_violation() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `--svg` and `--html`: the report's traces as diagrams, and the report as a page.
fn write_figures(
    args: &Args,
    cfg: &spec::ModelConfig,
    report: &runner::Report,
) -> Result<(), String> {
    if args.svg.is_none() && args.html.is_none() {
        return Ok(());
    }
    let model = RaftModel::new(cfg.clone());
    let write = |flag: &str, path: &PathBuf, text: String| {
        std::fs::write(path, text)
            .map_err(|e| format!("{flag} {}: cannot write: {e}", path.display()))
    };
    if let Some(path) = &args.svg {
        match html::svg(&model, report) {
            Some(svg) => write("--svg", path, svg)?,
            None => eprintln!(
                "check: no property is violated: no diagram to draw, {} not written",
                path.display()
            ),
        }
    }
    if let Some(path) = &args.html {
        write(
            "--html",
            path,
            html::html(&model, report, &cfg.file.description),
        )?;
    }
    Ok(())
}

/// Flags the explorer cannot honour, each with why: given with `--explore`, they refuse the run
/// (exit 2) rather than being silently ignored.
const NOT_FOR_THE_EXPLORER: &[(&str, &str, &str)] = &[
    ("depth", "--depth", "the explorer shows every state within the model's [bounds] and cannot stop at a depth; `check MODEL --depth N` runs a bounded search"),
    ("symmetry", "--symmetry", "the explorer shows states as they are, not one state per renaming of server ids"),
    ("seed", "--seed", "it steers the simulation checker, and the explorer's counterexamples come from BFS"),
    ("walks", "--walks", "it steers the simulation checker, and the explorer's counterexamples come from BFS"),
    ("walk", "--walk", "it steers the simulation checker, and the explorer's counterexamples come from BFS"),
    ("json", "--json", "the explorer serves a page, not a report; run `check MODEL --json`"),
    ("show_network", "--show-network", "the explorer lists the messages in flight on every state already"),
    ("suite", "--suite", "the explorer shows one model"),
];

/// Why `--explore` cannot run with the flags given, if it cannot.
fn explore_refusal(args: &Args, matches: &ArgMatches) -> Option<String> {
    if args.checker != CheckerKind::Bfs {
        return Some(format!(
            "--explore cannot be used with --checker {}: the explorer's counterexamples are BFS's (shortest traces)",
            args.checker.name()
        ));
    }
    NOT_FOR_THE_EXPLORER
        .iter()
        .find(|(id, ..)| matches.value_source(id) == Some(ValueSource::CommandLine))
        .map(|(_, flag, why)| format!("--explore cannot be used with {flag}: {why}"))
}

/// `--explore`: binds `addr` (port 0: any free port), starts `check`'s search for the
/// counterexamples in the background, prints the URL and serves until the process is killed.
fn explore(cfg: spec::ModelConfig, addr: &str, opts: RunOptions) -> Result<ExitCode, String> {
    let socket: SocketAddr = addr
        .parse()
        .map_err(|_| format!("--explore {addr}: not an address like 127.0.0.1:3000"))?;
    let listener =
        TcpListener::bind(socket).map_err(|e| format!("--explore {addr}: cannot listen: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("--explore {addr}: {e}"))?;
    for warning in unbounded::warnings(&cfg) {
        eprintln!("check: warning: {warning}");
    }
    let explorer = Explorer::start(&cfg, opts);
    println!(
        "explorer for model {} at http://{local}/ (Ctrl-C to stop)",
        cfg.name
    );
    std::io::stdout().flush().ok();
    let error = explorer::serve(explorer, listener);
    Err(format!("--explore {addr}: {error}"))
}
