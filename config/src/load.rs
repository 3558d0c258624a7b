//! Loading: defaults → TOML file → `OUTLAKE_<SECTION>__<KEY>` environment → validation, with
//! every problem reported at once.
//!
//! 1. The file (if any) must exist and be TOML; if not, that is the one error ([`LoadError::File`]):
//!    nothing else can be checked.
//! 2. The file's tree and the environment's tree are each checked against the known keys
//!    ([`crate::keys`]): unknown keys with "did you mean", values of the wrong kind in words,
//!    TOML date literals turned into text. Problem keys are dropped, the rest merged (the
//!    environment wins) and deserialized into [`RawConfig`].
//! 3. [`validate`] checks the values and reports every bad one ([`load`]); or only the
//!    `[sink]` and `[checkpoint]` values ([`load_storage`], for the commands that only touch
//!    storage).
//!
//! All problems from 2 and 3 come back together in [`LoadError::Invalid`], in the order of the
//! sections and keys in the README. A validation problem about a key that step 2 already
//! reported (a value of the wrong kind is dropped, so it then reads as missing), or that a
//! "did you mean" named, is left out. A problem about a key set in the environment names its
//! variable.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::Dict;
use figment::{Figment, Profile, Provider};

use crate::keys::{KEYS, Origin, SECTIONS, check_tree};
use crate::problem::{ConfigError, Problem, env_var_for, write_list};
use crate::raw::RawConfig;
use crate::validated::{Config, FsSecretReader, StorageConfig, validate, validate_storage};

#[derive(Debug)]
pub enum LoadError {
    /// The file does not exist or is not TOML; nothing else was checked.
    File { path: String, message: String },
    /// Every problem with the keys of the file (`None`: no file was read) and the environment.
    Invalid { file: Option<PathBuf>, error: ConfigError },
}

impl LoadError {
    /// The problems, one per wrong key; empty for [`LoadError::File`].
    pub fn problems(&self) -> &[Problem] {
        match self {
            LoadError::File { .. } => &[],
            LoadError::Invalid { error, .. } => error.problems(),
        }
    }

    /// The config file that was read, if one was.
    pub fn file(&self) -> Option<&Path> {
        match self {
            LoadError::File { path, .. } => Some(Path::new(path)),
            LoadError::Invalid { file, .. } => file.as_deref(),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::File { path, message } => write!(f, "config file {path}: {message}"),
            LoadError::Invalid { file: Some(path), error } => write_list(f, &format!("config file {}", path.display()), error.problems()),
            LoadError::Invalid { file: None, error } => {
                write_list(f, "the configuration (no config file was read; only OUTLAKE_* environment variables)", error.problems())
            }
        }
    }
}

impl std::error::Error for LoadError {}

impl From<ConfigError> for LoadError {
    fn from(error: ConfigError) -> Self {
        LoadError::Invalid { file: None, error }
    }
}

/// Merge the file (if any) and the environment into the raw configuration. Reports every
/// unknown key and value of the wrong kind, but does not validate values.
pub fn load_raw(file: Option<&Path>) -> Result<RawConfig, LoadError> {
    let read = read(file)?;
    match read.raw {
        Some(raw) if read.problems.is_empty() => Ok(raw),
        _ => Err(invalid(file, read.problems)),
    }
}

/// Load and validate, reporting every problem at once.
pub fn load(file: Option<&Path>) -> Result<Config, LoadError> {
    load_with(file, |raw| validate(raw, &FsSecretReader))
}

/// Load for the commands that only touch storage (`status`, `reset`, `vacuum`): the same file
/// and environment as [`load`], every unknown key and value of the wrong kind in any section
/// still reported, but only `[sink]` and `[checkpoint]` validated
/// ([`validate_storage`]). A file without `[source]` (no tenant, no secret) loads.
pub fn load_storage(file: Option<&Path>) -> Result<StorageConfig, LoadError> {
    load_with(file, validate_storage)
}

/// Read, then validate with `check`; the problems of both steps together.
fn load_with<T>(file: Option<&Path>, check: impl FnOnce(&RawConfig) -> Result<T, ConfigError>) -> Result<T, LoadError> {
    let read = read(file)?;
    let mut problems = read.problems;
    if let Some(raw) = &read.raw {
        match check(raw) {
            Ok(config) if problems.is_empty() => return Ok(config),
            Ok(_) => {}
            Err(e) => {
                let already: BTreeSet<&str> = problems.iter().map(|p| p.key.as_str()).chain(read.suggested.iter().map(String::as_str)).collect();
                let fresh: Vec<Problem> = e.into_problems().into_iter().filter(|p| !already.contains(p.key.as_str())).collect();
                problems.extend(fresh.into_iter().map(|mut p| {
                    if read.env_keys.contains(&p.key) {
                        p.env_var = Some(env_var_for(&p.key));
                    }
                    p
                }));
            }
        }
    }
    Err(invalid(file, problems))
}

/// `OUTLAKE_SOURCE__CLIENT_SECRET` → `source.client_secret`.
pub fn env_provider() -> Env {
    Env::prefixed("OUTLAKE_").split("__").filter(|k| {
        // Only SECTION__KEY variables are configuration; OUTLAKE_LOG and the like are not.
        k.as_str().contains('.')
    })
}

/// What the file and the environment hold.
struct Read {
    /// `None` when the checked trees still do not deserialize (then `problems` says why).
    raw: Option<RawConfig>,
    problems: Vec<Problem>,
    suggested: Vec<String>,
    /// Key paths set by the environment (`source.client_secret`).
    env_keys: BTreeSet<String>,
}

fn read(file: Option<&Path>) -> Result<Read, LoadError> {
    let file_tree = match file {
        None => Dict::new(),
        Some(path) => {
            let shown = path.display().to_string();
            if !path.exists() {
                return Err(LoadError::File { path: shown, message: "does not exist; pass --config with the path to your outlake.toml".into() });
            }
            let mut data = Toml::file_exact(path).data().map_err(|e| LoadError::File { path: shown, message: format!("is not valid TOML: {e}") })?;
            data.remove(&Profile::Default).unwrap_or_default()
        }
    };
    let env = env_provider();
    let env_text = env.iter().map(|(k, v)| (k.as_str().to_string(), v)).collect();
    let env_tree = env.data().ok().and_then(|mut d| d.remove(&Profile::Default)).unwrap_or_default();

    let from_file = check_tree(file_tree, &Origin::File);
    let from_env = check_tree(env_tree, &Origin::Env(&env_text));
    let mut problems = from_file.problems;
    problems.extend(from_env.problems);
    let mut suggested = from_file.suggested;
    suggested.extend(from_env.suggested);
    let env_keys = env_text.into_keys().collect();
    let (raw, leftover) = deserialize(from_file.tree, from_env.tree);
    problems.extend(leftover);
    Ok(Read { raw, problems, suggested, env_keys })
}

/// The checked trees merged (the environment wins) into a [`RawConfig`]. The checks leave only
/// keys of the right kind, so serde failing here is a gap in [`crate::keys`]; its errors are
/// still reported by key rather than lost.
fn deserialize(file: Dict, env: Dict) -> (Option<RawConfig>, Vec<Problem>) {
    let fig = Figment::new().merge(Serialized::defaults(file)).merge(Serialized::defaults(env));
    match fig.extract::<RawConfig>() {
        Ok(raw) => (Some(raw), Vec::new()),
        Err(e) => (None, e.into_iter().map(|e| Problem::new(e.path.join("."), e.kind.to_string(), "")).collect()),
    }
}

/// The problems in the order of the sections and keys.
fn invalid(file: Option<&Path>, mut problems: Vec<Problem>) -> LoadError {
    let rank = |key: &str| {
        let section = key.split('.').next().unwrap_or("");
        let s = SECTIONS.iter().position(|x| *x == section).map_or(0, |i| i + 1);
        let k = KEYS.iter().position(|spec| spec.path() == key).unwrap_or(usize::MAX);
        (s, k)
    };
    problems.sort_by_key(|p| rank(&p.key));
    LoadError::Invalid { file: file.map(Path::to_path_buf), error: ConfigError::new(problems) }
}
