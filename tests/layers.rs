//! The architecture as a test: each folder of `src/` is a layer, and a layer may import only the
//! layers below it. It reads the sources, so it fails, naming file and line, the moment someone
//! adds an import that crosses a layer the wrong way (README, "Architecture").
//!
//! - `protocol` imports nothing else of the crate, and is pure: no clock, randomness or I/O.
//! - `model` imports `protocol`.
//! - `check` imports `model` and `protocol`.
//! - `net` imports `protocol` only: the real node cannot reach the checker.
//! - `sim` may use `net`, `model`, `check` and `protocol`.
//!
//! And the seam: `model` and `check` read a server through `protocol::view`, never through the
//! server's role shape (`Role`), so that another implementation could be checked the same way.

use std::fs;
use std::path::{Path, PathBuf};

/// The crate's top-level modules, which are its layers.
const LAYERS: &[&str] = &["protocol", "model", "check", "net", "sim"];

/// What each layer may import besides itself.
fn allowed(layer: &str) -> &'static [&'static str] {
    match layer {
        "protocol" => &[],
        "model" => &["protocol"],
        "check" => &["model", "protocol"],
        "net" => &["protocol"],
        "sim" => &["net", "model", "check", "protocol"],
        _ => &[],
    }
}

/// What would make the protocol impure: a clock, randomness, I/O, threads or the network.
const IMPURE: &[&str] = &[
    "std::time::Instant",
    "std::time::SystemTime",
    "Instant::now",
    "SystemTime::now",
    "std::fs",
    "std::net",
    "std::io",
    "std::thread",
    "std::env",
    "std::process",
    "rand::",
    "libc::",
];

/// One import that breaks the rules, with where it is.
#[derive(Debug, PartialEq)]
struct Violation {
    file: String,
    line: usize,
    message: String,
}

/// The line with comments and the contents of string literals blanked out, so that a doc
/// comment or a message that mentions `crate::check` is not taken for an import.
fn code_only(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        match (in_string, c) {
            (false, '/') if chars.peek() == Some(&'/') => break,
            (false, '"') => {
                in_string = true;
                out.push('"');
            }
            (true, '\\') => {
                chars.next();
            }
            (true, '"') => {
                in_string = false;
                out.push('"');
            }
            (true, _) => {}
            (false, _) => out.push(c),
        }
    }
    out
}

/// The top-level modules a line of code names through `crate::`, `raft_checked::` or a chain of
/// `super::` that climbs out of the file's own module path (`depth` modules deep).
fn named_layers(code: &str, depth: usize) -> Vec<String> {
    let mut found = Vec::new();
    for root in ["crate::", "raft_checked::"] {
        let mut rest = code;
        while let Some(at) = rest.find(root) {
            let boundary = rest[..at]
                .chars()
                .last()
                .is_none_or(|c| !c.is_alphanumeric() && c != '_');
            rest = &rest[at + root.len()..];
            if boundary {
                found.extend(first_segments(rest));
            }
        }
    }
    let mut rest = code;
    while let Some(at) = rest.find("super::") {
        let mut climbs = 0;
        let mut tail = &rest[at..];
        while let Some(t) = tail.strip_prefix("super::") {
            climbs += 1;
            tail = t;
        }
        if climbs >= depth {
            found.extend(first_segments(tail));
        }
        rest = tail;
    }
    found
        .into_iter()
        .filter(|s| LAYERS.contains(&s.as_str()))
        .collect()
}

/// The first path segments after a root: `model::X` gives `model`; `{model::X, check}` gives
/// both.
fn first_segments(after_root: &str) -> Vec<String> {
    let ident = |s: &str| {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect::<String>()
    };
    let Some(group) = after_root.strip_prefix('{') else {
        return vec![ident(after_root)];
    };
    let mut segments = Vec::new();
    let mut depth = 0;
    let mut start = true;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => start = true,
            c if start && !c.is_whitespace() => {
                segments.push(ident(&group[i..]));
                start = false;
            }
            _ => {}
        }
    }
    segments
}

/// Checks one file of layer `layer`, `depth` modules below the crate root.
fn check_file(file: &str, layer: &str, depth: usize, text: &str) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = code_only(line);
        for named in named_layers(&code, depth) {
            if named != layer && !allowed(layer).contains(&named.as_str()) {
                let may = match allowed(layer) {
                    [] => "nothing else of the crate".to_string(),
                    list => list.join(", "),
                };
                violations.push(Violation {
                    file: file.to_string(),
                    line: n + 1,
                    message: format!(
                        "`{}`: {layer} may not import {named} ({layer} may import {may})",
                        line.trim()
                    ),
                });
            }
        }
        if (layer == "model" || layer == "check") && names_word(&code, "Role") {
            violations.push(Violation {
                file: file.to_string(),
                line: n + 1,
                message: format!(
                    "`{}`: {layer} reads servers through protocol::view (ServerView, \
                     Symmetric), not the server's own role shape",
                    line.trim()
                ),
            });
        }
        if layer == "protocol" {
            if let Some(impure) = IMPURE.iter().find(|i| code.contains(*i)) {
                violations.push(Violation {
                    file: file.to_string(),
                    line: n + 1,
                    message: format!(
                        "`{}`: the protocol is pure, but this uses {impure}",
                        line.trim()
                    ),
                });
            }
        }
    }
    violations
}

/// Whether `code` names `word` as a whole identifier.
fn names_word(code: &str, word: &str) -> bool {
    code.match_indices(word).any(|(at, _)| {
        let before = code[..at].chars().last();
        let after = code[at + word.len()..].chars().next();
        let part = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !part(before) && !part(after)
    })
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

/// How many modules deep a file is: `src/model/mod.rs` is 1 (`model`), `src/model/spec.rs` 2.
fn module_depth(relative: &Path) -> usize {
    let parts: Vec<_> = relative.iter().collect();
    let last = relative.file_name().and_then(|f| f.to_str()).unwrap_or("");
    parts.len() - usize::from(last == "mod.rs")
}

#[test]
fn every_layer_imports_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut checked = 0;
    let mut violations = Vec::new();
    for layer in LAYERS {
        let dir = src.join(layer);
        if !dir.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&dir, &mut files);
        for path in files {
            let relative = path.strip_prefix(&src).unwrap();
            let text = fs::read_to_string(&path).unwrap();
            let file = format!("src/{}", relative.display());
            violations.extend(check_file(&file, layer, module_depth(relative), &text));
            checked += 1;
        }
    }
    assert!(
        checked > 20,
        "only {checked} files found under {}",
        src.display()
    );
    let listed: Vec<String> = violations
        .iter()
        .map(|v| format!("{}:{}: {}", v.file, v.line, v.message))
        .collect();
    assert!(
        violations.is_empty(),
        "imports that cross the layers:\n{}",
        listed.join("\n")
    );
}

#[test]
fn no_file_sits_outside_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let loose: Vec<String> = fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|f| f != "lib.rs"))
        .map(|p| p.display().to_string())
        .collect();
    assert!(loose.is_empty(), "files outside a layer folder: {loose:?}");
}

/// The check itself must be able to fail: each forbidden import below is caught, with file and
/// line, and each allowed one passes.
#[test]
fn the_layer_check_catches_forbidden_imports() {
    let caught = |layer: &str, depth: usize, text: &str| check_file("f.rs", layer, depth, text);
    let forbidden = [
        ("protocol", 2, "use crate::model::SystemState;"),
        (
            "protocol",
            3,
            "use crate::{protocol::log::Log, check::bfs};",
        ),
        ("protocol", 2, "let t = std::time::Instant::now();"),
        ("model", 1, "use crate::check::properties;"),
        ("model", 2, "use super::super::check::bfs::fingerprint;"),
        ("model", 2, "    let p = crate::check::properties::all();"),
        ("net", 2, "use crate::model::RaftModel;"),
        ("net", 2, "use raft_checked::check::runner;"),
        ("check", 2, "use crate::net::wire;"),
        ("check", 2, "use crate::{\n    model::X, sim::Y};"),
        (
            "check",
            2,
            "use crate::protocol::server::{Role, ServerState};",
        ),
        ("model", 1, "    if let Role::Leader { .. } = s.role {"),
    ];
    for (layer, depth, text) in forbidden {
        let text = text.replace("{\n    ", "{");
        let found = caught(layer, depth, &text);
        assert_eq!(found.len(), 1, "{layer}: `{text}` not caught: {found:?}");
        assert_eq!((found[0].file.as_str(), found[0].line), ("f.rs", 1));
    }
    let fine = [
        (
            "protocol",
            3,
            "use crate::protocol::types::Msg; use super::Handler;",
        ),
        (
            "model",
            1,
            "use crate::protocol::server::RaftServer; use super::*;",
        ),
        (
            "check",
            2,
            "use crate::{model::RaftModel, protocol::types::Msg};",
        ),
        ("net", 2, "use crate::net::wire; // not crate::check::bfs"),
        ("net", 2, r#"let s = "crate::model::X";"#),
        ("sim", 2, "use crate::{check, model, net, protocol};"),
    ];
    for (layer, depth, text) in fine {
        assert_eq!(caught(layer, depth, text), vec![], "{layer}: `{text}`");
    }
}
