//! A report as figures: each violated property's trace as a sequence diagram (`check --svg`,
//! drawn by `model::diagram`), naming at its end the servers and entries that break the
//! property; and the whole report as one self-contained HTML page (`check --html`) that needs
//! no network: verdicts, figures, and each trace as a diagram and as the text table.

use crate::check::explain::concerns;
use crate::check::report::{render_trace, searched_steps, PropertyReport, Report, Status};
use crate::model::diagram::{escape, Drawing, Ending};
use crate::model::{RaftModel, DROP_EVENT};

/// A violated property's trace as a sequence diagram, or None when it has no counterexample.
/// `id` prefixes the SVG's ids, so that several diagrams can share a page.
pub fn diagram(model: &RaftModel, prop: &PropertyReport, id: &str) -> Option<Drawing> {
    let trace = prop
        .trace
        .as_ref()
        .filter(|_| prop.status == Status::Violated)?;
    let actions = crate::check::report::trace_actions(model, trace);
    let given = model.given.len();
    let states = model.replay(&actions);
    let lost = trace
        .iter()
        .filter(|s| s.given && s.event.starts_with(DROP_EVENT))
        .count();
    let given_note = match (given - lost, lost) {
        (0, 0) => String::new(),
        (g, 0) => format!(" after {g} given steps"),
        (g, l) => format!(" after {g} given steps and the loss of {l} messages"),
    };
    let ending = Ending {
        title: Some(format!(
            "{} violated in {} steps{given_note}",
            prop.name,
            searched_steps(trace)
        )),
        lines: concerns(model, &prop.name, &states),
        loop_from: prop.loop_from,
        id: id.to_string(),
    };
    Some(model.sequence_diagram(&actions, given, &ending))
}

/// Every violated property's diagram, one below the other, as one SVG document (`check
/// --svg`); None when no property is violated.
pub fn svg(model: &RaftModel, report: &Report) -> Option<String> {
    let drawings: Vec<Drawing> = report
        .properties
        .iter()
        .enumerate()
        .filter_map(|(k, prop)| diagram(model, prop, &format!("p{k}-")))
        .collect();
    (!drawings.is_empty()).then(|| Drawing::stack(&drawings))
}

/// The page's stylesheet: inline, so that the file is all there is to open.
const PAGE_STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:100%}\
table.verdicts{border-collapse:collapse;margin:1em 0}\
table.verdicts td,table.verdicts th{border:1px solid #ccc;padding:3px 8px;text-align:left}\
td.violated{background:#f9d6d5;font-weight:bold}td.holds,td.vacuous,td.example_found{background:#dff3e4}\
td.unknown,td.no_example{background:#f3f3f3}\
.figure{overflow-x:auto;border:1px solid #ddd;padding:6px;margin:1em 0}\
pre{background:#f7f7f7;padding:8px;overflow-x:auto;font-size:12px}";

/// The whole report as one self-contained HTML page (`check --html`): no script, no external
/// style or font, every diagram inline, so that it opens offline and can be mailed or attached.
pub fn html(model: &RaftModel, report: &Report, description: &str) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>check {m}</title>\n<style>{PAGE_STYLE}</style>\n</head>\n<body>\n\
         <h1>model {m}</h1>\n<p>{d}</p>\n",
        m = escape(&report.model),
        d = escape(description)
    );
    out.push_str(&verdicts(report));
    out.push_str(&figures(report));
    for (k, prop) in report.properties.iter().enumerate() {
        let (Some(drawing), Some(trace)) = (diagram(model, prop, &format!("p{k}-")), &prop.trace)
        else {
            continue;
        };
        let mut table = render_trace(trace);
        if let Some(back) = prop.loop_from {
            table.push_str(&format!(
                "   ↻ back to step {back}: the steps after it repeat forever\n"
            ));
        }
        out.push_str(&format!(
            "<h2 id=\"p{k}\">{} violated</h2>\n<div class=\"figure\">\n{}</div>\n<pre>{}</pre>\n",
            escape(&prop.name),
            drawing.svg(),
            escape(&table)
        ));
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// One row per property: its name (a link to its trace when violated), kind and verdict.
fn verdicts(report: &Report) -> String {
    let mut out = String::from(
        "<table class=\"verdicts\">\n<tr><th>property</th><th>kind</th><th>verdict</th></tr>\n",
    );
    for (k, prop) in report.properties.iter().enumerate() {
        let name = escape(&prop.name);
        let name = match prop.status {
            Status::Violated if prop.trace.is_some() => format!("<a href=\"#p{k}\">{name}</a>"),
            _ => name,
        };
        let status = prop.status.name();
        out.push_str(&format!(
            "<tr><td>{name}</td><td>{}</td><td class=\"{status}\">{status}</td></tr>\n",
            prop.kind
        ));
    }
    out.push_str("</table>\n");
    out
}

/// The run's figures: checker, states, depth, time, and whether the search was complete.
fn figures(report: &Report) -> String {
    let coverage = match report.stopped_by {
        None => "complete".to_string(),
        Some(stop) => format!("incomplete: stopped at {}", stop.describe()),
    };
    let symmetry = if report.symmetry { ", symmetry" } else { "" };
    let mut out = format!(
        "<p>checker {}{symmetry} · states {} · unique {} · depth {} · {:.2} s · {coverage}</p>\n",
        report.checker, report.states, report.unique_states, report.max_depth, report.elapsed_s
    );
    if let (Some(walks), Some(seed)) = (report.walks, report.seed) {
        out.push_str(&format!(
            "<p>swarm: {walks} random walks from seed {seed}</p>\n"
        ));
    }
    if let Some(stops) = report.bound_stops {
        out.push_str(&format!(
            "<p>liveness: {stops} states stop at a bound (not counterexamples)</p>\n"
        ));
    }
    out
}
