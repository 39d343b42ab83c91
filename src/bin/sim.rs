//! `sim`: runs the real node's loop, many nodes and clients in one process over virtual time,
//! through a named scenario on one seed or many. One seed is one run: the same seed prints the
//! same output (stdout) on any machine; wall-clock figures go to stderr.
//!
//! Exit status: 0 when every run passed, 1 when one failed, 2 for bad usage.

use clap::Parser;
use raft_checked::protocol::server::Bug;
use raft_checked::sim::scenarios::{self, Outcome, Scenario};
use raft_checked::sim::world;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// A run allocates and frees a message, a save and a trace row every few microseconds of wall
/// time; glibc's allocator took about a sixth of `kv_speed`'s time in malloc, free and realloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "sim",
    version,
    about = "Deterministic simulation of Raft nodes: one seed, one run"
)]
struct Args {
    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,
    /// The scenario to run (see --list).
    #[arg(long)]
    scenario: Option<String>,
    /// Run this one seed (default 1).
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run seeds 1..=N in parallel and summarise.
    #[arg(long)]
    seeds: Option<u64>,
    /// Inject a bug of the zoo, named as in model files (e.g. vote_not_persisted).
    #[arg(long)]
    bug: Option<String>,
    /// Print one JSON object: scenario, runs, failures, virtual_s, wall_s, ops (and
    /// max_elect_after_heal_s).
    #[arg(long)]
    json: bool,
    /// Print every run's whole trace, not only failing ones' last rows.
    #[arg(long)]
    trace: bool,
    /// Write a sequence diagram (SVG) of the run's last steps to FILE: the run of --seed, or
    /// with --seeds the lowest failing seed (rerun with recording: one seed is one run).
    /// Example: sim --scenario figure8 --seed 3 --bug vote_not_persisted --svg f8.svg
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Write the run's protocol events (one seed) as a model file's given steps to FILE, so that
    /// `check FILE` replays the run and searches around where it ended.
    /// Example: sim --scenario figure8 --seed 3 --bug vote_not_persisted --emit-model f8.toml
    #[arg(long, value_name = "FILE", conflicts_with = "seeds")]
    emit_model: Option<PathBuf>,
    /// How many of the run's last steps the diagram draws.
    #[arg(long, value_name = "N", default_value_t = 80)]
    svg_steps: usize,
    /// The format of the log that RUST_LOG turns on (on stderr, stamped with virtual time).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// The formats of `--log-format`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per event.
    Json,
}

/// Stamps log lines with the run's virtual time, not the wall clock: a seed's log is then
/// the same on every machine, as its output is.
struct VirtualTime;

impl tracing_subscriber::fmt::time::FormatTime for VirtualTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        write!(w, "{:.6}s", world::virtual_now().as_secs_f64())
    }
}

/// With `RUST_LOG` set, logs what the nodes do (elections, terms, commits, snapshots, drops:
/// the `node` binary's log lines) and, at `debug`, every trace row of the simulator, on
/// stderr. Without it nothing is logged: the simulator's output is its report alone.
fn init_logging(format: LogFormat) {
    let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() else {
        return;
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_timer(VirtualTime)
        .with_ansi(false)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn usage(msg: String) -> ExitCode {
    eprintln!("sim: error: {msg}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    raft_checked::net::quiet_broken_pipe();
    let args = Args::parse();
    init_logging(args.log_format);
    if args.list {
        for s in scenarios::all() {
            println!("{:<22} {} servers  {}", s.name, s.servers, s.about);
        }
        return ExitCode::SUCCESS;
    }
    let Some(name) = &args.scenario else {
        return usage("give --scenario NAME (or --list)".into());
    };
    let Some(scenario) = scenarios::find(name) else {
        let names: Vec<&str> = scenarios::all().iter().map(|s| s.name).collect();
        return usage(format!(
            "no scenario {name:?}; there are: {}",
            names.join(", ")
        ));
    };
    let bug = match args.bug.as_deref().map(parse_bug).transpose() {
        Ok(b) => b,
        Err(e) => return usage(e),
    };
    let seeds: Vec<u64> = match (args.seed, args.seeds) {
        (_, Some(0)) => return usage("--seeds must be at least 1".into()),
        (_, Some(n)) => (1..=n).collect(),
        (Some(s), None) => vec![s],
        (None, None) => vec![1],
    };
    let started = Instant::now();
    let outcomes = run_all(scenario, &seeds, bug, args.trace);
    let wall = started.elapsed().as_secs_f64();
    report(scenario, &outcomes, wall, args.json);
    if let Some(path) = &args.svg {
        if let Err(e) = write_svg(scenario, &outcomes, bug, args.svg_steps, path) {
            return usage(e);
        }
    }
    if let Some(path) = &args.emit_model {
        if let Err(e) = write_model(scenario, &outcomes[0], bug, path) {
            eprintln!("sim: error: {e}");
            return ExitCode::from(2);
        }
    }
    if outcomes.iter().all(|o| o.failures.is_empty()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Writes the diagram of the run to draw (the only one, or the lowest failing seed) to `path`;
/// says on stderr what it drew.
fn write_svg(
    scenario: &Scenario,
    outcomes: &[Outcome],
    bug: Option<Bug>,
    steps: usize,
    path: &Path,
) -> Result<(), String> {
    let chosen = match outcomes {
        [only] => only,
        _ => match outcomes.iter().find(|o| !o.failures.is_empty()) {
            Some(o) => o,
            None => {
                eprintln!("sim: every run passed: no diagram written (--seed S draws one run)");
                return Ok(());
            }
        },
    };
    let (again, drawing) = scenarios::draw(scenario, chosen.seed, bug, steps);
    if again.failures != chosen.failures {
        return Err(format!(
            "seed {} ran differently when recorded ({:?}, then {:?}): please report this",
            chosen.seed, chosen.failures, again.failures
        ));
    }
    std::fs::write(path, drawing.svg())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!(
        "sim: seed {}'s last {steps} steps drawn in {}",
        chosen.seed,
        path.display()
    );
    Ok(())
}

/// Writes the run's protocol events as a model file (`sim::emit`); says on stderr what it wrote
/// and what it left out.
fn write_model(
    scenario: &Scenario,
    outcome: &Outcome,
    bug: Option<Bug>,
    path: &Path,
) -> Result<(), String> {
    let (again, emitted) = scenarios::emit_model(scenario, outcome.seed, bug);
    if again.failures != outcome.failures {
        return Err(format!(
            "seed {} ran differently when recorded ({:?}, then {:?}): please report this",
            outcome.seed, outcome.failures, again.failures
        ));
    }
    let emitted = emitted?;
    std::fs::write(path, &emitted.text)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!(
        "sim: {} given steps from {} protocol events written to {} ({} deliveries that change nothing in the model left out{}); check it with: check {}",
        emitted.steps,
        emitted.events,
        path.display(),
        emitted.moot,
        emitted
            .stopped
            .as_ref()
            .map_or(String::new(), |why| format!("; the steps stop early: {why}")),
        path.display()
    );
    Ok(())
}

/// A bug's model-file name (`vote_not_persisted`) as the zoo's value.
fn parse_bug(name: &str) -> Result<Bug, String> {
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .map_err(|e| format!("--bug {name:?}: {e}"))
}

/// Runs every seed (in parallel: each run is one thread's, and depends on its seed alone);
/// outcomes in seed order.
fn run_all(scenario: &Scenario, seeds: &[u64], bug: Option<Bug>, trace: bool) -> Vec<Outcome> {
    seeds
        .par_iter()
        .map(|&seed| {
            let _run = tracing::info_span!("run", seed).entered();
            scenarios::run(scenario, seed, bug, trace)
        })
        .collect()
}

fn report(scenario: &Scenario, outcomes: &[Outcome], wall: f64, json: bool) {
    let virtual_s: f64 = outcomes.iter().map(|o| o.virtual_time.as_secs_f64()).sum();
    let ops: usize = outcomes.iter().map(|o| o.ops).sum();
    if json {
        let failures: Vec<serde_json::Value> = outcomes
            .iter()
            .flat_map(|o| {
                o.failures.iter().map(move |f| {
                    serde_json::json!({"seed": o.seed, "check": f.check, "detail": f.detail})
                })
            })
            .collect();
        // The liveness figure: the slowest election after the last fault healed, over runs.
        let elect = outcomes
            .iter()
            .filter_map(|o| o.elected_after_heal)
            .max()
            .map(|d| d.as_secs_f64());
        let out = serde_json::json!({
            "scenario": scenario.name,
            "runs": outcomes.len(),
            "failures": failures,
            "virtual_s": virtual_s,
            "wall_s": wall,
            "ops": ops,
            "max_elect_after_heal_s": elect,
        });
        println!("{out}");
        return;
    }
    for o in outcomes {
        print!("{}", o.text);
    }
    if outcomes.len() > 1 {
        let failed: Vec<String> = outcomes
            .iter()
            .filter(|o| !o.failures.is_empty())
            .map(|o| o.seed.to_string())
            .collect();
        println!(
            "{}: {} runs, {} failed{}; {virtual_s:.3} virtual s, {ops} ops",
            scenario.name,
            outcomes.len(),
            failed.len(),
            if failed.is_empty() {
                String::new()
            } else {
                format!(" (seeds {})", failed.join(" "))
            }
        );
    }
    eprintln!(
        "sim: {wall:.2} wall s, {:.0} virtual s per wall s",
        virtual_s / wall.max(1e-9)
    );
}
