//! Check suites: a list of (model, checker, limits, expected status per property) entries. They
//! are the regression matrix: `check --suite checks/ci.toml` runs every entry in parallel and
//! passes only if every expectation matches.

use crate::check::load;
use crate::check::properties;
use crate::check::runner::{self, CheckerKind, Report, RunOptions, Status};
use crate::model::spec::{ConfigError, ModelConfig};
use rayon::prelude::*;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// A suite file (`checks/*.toml`) as written: its `[[entry]]` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteFile {
    /// The entries; all are run, and the suite passes only if every expectation matches.
    #[serde(rename = "entry")]
    pub entries: Vec<EntryFile>,
}

/// One `[[entry]]` as written: a model, how to check it, and the verdicts it must get.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryFile {
    /// Defaults to the model name.
    pub name: Option<String>,
    /// The model to check: a name under `models/` or a path.
    pub model: String,
    /// `bfs` (default), `dfs` or `simulation`.
    #[serde(default = "bfs")]
    pub checker: CheckerKind,
    /// Threads for this entry's checker (default 1: entries already run side by side).
    #[serde(default = "one")]
    pub threads: usize,
    /// Depth limit, as `check --depth`; overrides the model's `bounds.max_depth`.
    pub depth: Option<usize>,
    /// State limit, as `check --max-states`.
    pub max_states: Option<usize>,
    /// Simulation seed, as `check --seed` (default 0).
    #[serde(default)]
    pub seed: u64,
    /// Simulation: walks to run, as `check --walks`.
    pub walks: Option<u64>,
    /// Time limit in seconds, as `check --timeout`.
    pub timeout_s: Option<f64>,
    /// Symmetry reduction: absent, as the model declares (`symmetry` in the model file); `true`,
    /// on, as `check --symmetry` (models without clients only); `false`, off even when the
    /// model declares it, as `check --no-symmetry`.
    pub symmetry: Option<bool>,
    /// Check a bug model with correct Raft: its knobs and given steps alone must break nothing.
    #[serde(default)]
    pub without_bug: bool,
    /// Check only these properties (as `check --property`); absent: all.
    pub properties: Option<Vec<String>>,
    /// Check the liveness properties (default true; `check --no-liveness` is false).
    #[serde(default = "yes")]
    pub liveness: bool,
    /// Property name → expected status; properties not listed are not compared.
    pub expect: BTreeMap<String, Status>,
    /// Optional: the exact length of the shortest trace of a violated property.
    pub trace_len: Option<BTreeMap<String, usize>>,
    /// Optional: the step a liveness counterexample's cycle returns to (`loop_from` in JSON).
    pub loop_from: Option<BTreeMap<String, usize>>,
}

fn bfs() -> CheckerKind {
    CheckerKind::Bfs
}

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

/// A validated suite entry, ready to run: the model loaded, the options and what to compare.
pub struct Entry {
    /// The name result rows show: `name`, else the model's (`... without its bug` for
    /// `without_bug`).
    pub name: String,
    /// The loaded model, its bug taken out when `without_bug`.
    pub model: ModelConfig,
    /// How to run it: the entry's settings, with half the usual memory budget.
    pub opts: RunOptions,
    /// Property name → the status it must get.
    pub expect: BTreeMap<String, Status>,
    /// Property name → the exact number of searched steps its trace must have.
    pub trace_len: BTreeMap<String, usize>,
    /// Property name → the step its lasso's cycle must return to.
    pub loop_from: BTreeMap<String, usize>,
}

/// Reads and validates a suite file: every model loads, every property named exists, options are
/// sound. Errors name the file, the entry and the field.
pub fn load(path: &Path) -> Result<Vec<Entry>, ConfigError> {
    let at = |m: String| ConfigError(format!("{}: {m}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| at(format!("cannot read: {e}")))?;
    let file: SuiteFile = toml::from_str(&text).map_err(|e| at(e.to_string().trim_end().into()))?;
    let known = properties::names();
    let mut entries = Vec::new();
    for (i, e) in file.entries.into_iter().enumerate() {
        let mut model =
            load::load(&e.model).map_err(|err| at(format!("entry[{i}].model: {err}")))?;
        if e.without_bug {
            if model.file.bug.take().is_none() {
                return Err(at(format!(
                    "entry[{i}].without_bug: model {} injects no bug",
                    e.model
                )));
            }
            crate::model::RaftModel::try_new(model.clone())
                .map_err(|(field, err)| at(format!("entry[{i}].without_bug: {field}: {err}")))?;
        }
        let named = [
            ("expect", e.expect.keys().collect::<Vec<_>>()),
            (
                "trace_len",
                e.trace_len.iter().flat_map(|t| t.keys()).collect(),
            ),
            ("properties", e.properties.iter().flatten().collect()),
        ];
        for (field, names) in named {
            if let Some(name) = names.iter().find(|n| !known.contains(&n.as_str())) {
                return Err(at(format!(
                    "entry[{i}].{field}: unknown property '{name}' (known: {})",
                    known.join(", ")
                )));
            }
        }
        if e.threads == 0 {
            return Err(at(format!("entry[{i}].threads: must be at least 1")));
        }
        let opts = RunOptions {
            checker: e.checker,
            threads: e.threads,
            depth: e.depth,
            max_states: e.max_states,
            seed: e.seed,
            timeout: e.timeout_s.map(Duration::from_secs_f64),
            symmetry: e.symmetry == Some(true),
            no_symmetry: e.symmetry == Some(false),
            // Entries run two at a time (one per core): each gets half the usual budget.
            max_memory_bytes: runner::default_memory_limit().map(|m| m / 2),
            progress: false,
            properties: e.properties.unwrap_or_default(),
            liveness: e.liveness,
            walks: e.walks,
            walk: None,
        };
        runner::check_options(&model, &opts).map_err(|m| at(format!("entry[{i}]: {m}")))?;
        entries.push(Entry {
            name: e.name.unwrap_or_else(|| match e.without_bug {
                true => format!("{} without its bug", e.model),
                false => e.model.clone(),
            }),
            model,
            opts,
            expect: e.expect,
            trace_len: e.trace_len.unwrap_or_default(),
            loop_from: e.loop_from.unwrap_or_default(),
        });
    }
    Ok(entries)
}

/// One expectation of one entry and what the run gave: a line of the suite's table.
pub struct Row {
    /// The entry's name: the table's first column.
    pub entry: String,
    /// The property this row compares.
    pub property: String,
    /// The expected status, with ` in N` when a trace length is pinned.
    pub expected: String,
    /// The status the run gave, with ` in N` when it has a trace.
    pub got: String,
    /// Distinct states the entry's run visited.
    pub states: u64,
    /// How long the entry's run took, in seconds.
    pub seconds: f64,
    /// Whether the status, and the trace length if pinned, are as expected.
    pub ok: bool,
}

/// Runs every entry (in parallel) and compares each expectation.
pub fn run(entries: &[Entry]) -> Vec<Row> {
    let reports: Vec<Report> = entries
        .par_iter()
        .map(|e| runner::run(&e.model, &e.opts))
        .collect();
    let mut rows = Vec::new();
    for (e, r) in entries.iter().zip(&reports) {
        for (name, want) in &e.expect {
            let p = r.properties.iter().find(|p| &p.name == name);
            let got = p.map_or(Status::Unknown, |p| p.status);
            let len = p
                .and_then(|p| p.trace.as_ref())
                .map(|t| runner::searched_steps(t));
            let want_len = e.trace_len.get(name);
            let mut expected = want.name().to_string();
            let mut got_text = got.name().to_string();
            if let Some(w) = want_len {
                expected.push_str(&format!(" in {w}"));
            }
            if let Some(l) = len {
                got_text.push_str(&format!(" in {l}"));
            }
            let want_loop = e.loop_from.get(name);
            let got_loop = p.and_then(|p| p.loop_from);
            if let Some(k) = want_loop {
                expected.push_str(&format!(" ↻{k}"));
            }
            if let Some(k) = got_loop {
                got_text.push_str(&format!(" ↻{k}"));
            }
            rows.push(Row {
                entry: e.name.clone(),
                property: name.clone(),
                expected,
                got: got_text,
                states: r.unique_states,
                seconds: r.elapsed_s,
                ok: got == *want
                    && want_len.is_none_or(|w| Some(*w) == len)
                    && want_loop.is_none_or(|w| Some(*w) == got_loop),
            });
        }
    }
    rows
}

/// The suite's table: one row per expectation, `MISMATCH` on each that failed, and the counts.
pub fn render(rows: &[Row]) -> String {
    let w = |f: &dyn Fn(&Row) -> usize, min: usize| rows.iter().map(f).max().unwrap_or(0).max(min);
    let (we, wp, wx, wg) = (
        w(&|r| r.entry.len(), 5),
        w(&|r| r.property.len(), 8),
        w(&|r| r.expected.len(), 8),
        w(&|r| r.got.len(), 3),
    );
    let mut out = format!(
        "{:we$}  {:wp$}  {:wx$}  {:wg$}  {:>10}  {:>8}\n",
        "entry", "property", "expected", "got", "states", "seconds"
    );
    for r in rows {
        out.push_str(&format!(
            "{:we$}  {:wp$}  {:wx$}  {:wg$}  {:>10}  {:>8.2}{}\n",
            r.entry,
            r.property,
            r.expected,
            r.got,
            r.states,
            r.seconds,
            if r.ok { "" } else { "  MISMATCH" }
        ));
    }
    let bad = rows.iter().filter(|r| !r.ok).count();
    out.push_str(&format!("{} passed, {} failed\n", rows.len() - bad, bad));
    out
}
