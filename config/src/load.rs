//! Loading: defaults → TOML file → `OUTLAKE_<SECTION>__<KEY>` environment → validation.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};

use crate::raw::RawConfig;
use crate::validated::{Config, ConfigError, FsSecretReader, validate};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("config file {path}: {message}")]
    File { path: String, message: String },
    #[error("{0}")]
    Invalid(#[from] ConfigError),
}

/// Merge the file (if any) and the environment into the raw configuration.
pub fn load_raw(file: Option<&Path>) -> Result<RawConfig, LoadError> {
    let mut fig = Figment::new();
    if let Some(path) = file {
        if !path.exists() {
            return Err(LoadError::File {
                path: path.display().to_string(),
                message: "does not exist; pass --config with the path to your outlake.toml".into(),
            });
        }
        fig = fig.merge(Toml::file_exact(path));
    }
    fig = fig.merge(env_provider());
    fig.extract::<RawConfig>().map_err(|e| LoadError::File {
        path: file.map(|p| p.display().to_string()).unwrap_or_else(|| "(environment)".into()),
        message: describe_figment_error(e),
    })
}

/// Load and validate.
pub fn load(file: Option<&Path>) -> Result<Config, LoadError> {
    let raw = load_raw(file)?;
    Ok(validate(&raw, &FsSecretReader)?)
}

/// `OUTLAKE_SOURCE__CLIENT_SECRET` → `source.client_secret`.
pub fn env_provider() -> Env {
    Env::prefixed("OUTLAKE_").split("__").filter(|k| {
        // Only SECTION__KEY variables are configuration; OUTLAKE_LOG and the like are not.
        k.as_str().contains('.')
    })
}

fn describe_figment_error(e: figment::Error) -> String {
    let mut out = Vec::new();
    for err in e {
        let key = if err.path.is_empty() { String::new() } else { format!("key `{}`: ", err.path.join(".")) };
        let kind = match &err.kind {
            figment::error::Kind::UnknownField(field, expected) => {
                let section = if err.path.is_empty() { String::new() } else { format!("{}.", err.path.join(".")) };
                format!("unknown key `{section}{field}`; known keys here are: {}", expected.join(", "))
            }
            other => format!("{key}{other}"),
        };
        out.push(kind);
    }
    out.join("; ")
}
