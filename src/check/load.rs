//! Finding and reading model files: a name under `models/` or a path. Parsing and validation
//! are the model's (`model::spec::parse`); this is the part that touches the file system.

use crate::model::spec::{parse, ConfigError, ModelConfig};
use std::path::{Path, PathBuf};

/// Resolves a model argument: a path to an existing file, or a name under `models/`
/// (`default`, `bugs/figure8`), with or without `.toml`.
pub fn resolve(arg: &str) -> Result<PathBuf, ConfigError> {
    let direct = PathBuf::from(arg);
    if direct.is_file() {
        return Ok(direct);
    }
    let stem = arg.strip_suffix(".toml").unwrap_or(arg);
    let named = models_dir().join(format!("{stem}.toml"));
    if named.is_file() {
        return Ok(named);
    }
    Err(ConfigError(format!(
        "model '{arg}' not found: no file '{arg}' and no '{}'; the models are: {}",
        named.display(),
        available().join(", ")
    )))
}

/// The names of the models under `models/` (`default`, `bugs/no_step_down`, ...), sorted: what
/// a user can pass instead of a path.
pub fn available() -> Vec<String> {
    let dir = models_dir();
    let mut names = Vec::new();
    let mut folders = vec![dir.clone()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for path in entries.flatten().map(|e| e.path()) {
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "toml") {
                names.push(model_name(&path));
            }
        }
    }
    names.sort();
    names
}

/// `models/` of this crate: next to the current directory when run from a checkout, else the
/// one the binary was built from.
pub fn models_dir() -> PathBuf {
    let local = PathBuf::from("models");
    if local.is_dir() {
        local
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
    }
}

/// Resolves `arg` (`resolve`), reads the file and parses it as the model named by its path under
/// `models/`: what `check` and suites load a model with.
pub fn load(arg: &str) -> Result<ModelConfig, ConfigError> {
    let path = resolve(arg)?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
    let name = model_name(&path);
    parse(&name, &path, &text)
}

fn model_name(path: &Path) -> String {
    let dir = models_dir();
    let rel = path
        .strip_prefix(&dir)
        .or_else(|_| path.strip_prefix("models"))
        .unwrap_or(path);
    rel.with_extension("").to_string_lossy().replace('\\', "/")
}
