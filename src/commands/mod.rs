//! One file per command.
pub mod check;
pub mod demo;
pub mod estimate;
pub mod reset;
pub mod sim;
pub mod status;
pub mod sync;
pub mod vacuum;

use std::sync::Arc;

use outlake_config::StorageConfig;
use outlake_pipeline::lake::{DynLake, Lake};
use outlake_pipeline::model::{Checkpoint, Stream};
use outlake_sinks::ObjectLake;
use outlake_sinks::format::STAGING_DIR;

use crate::cli::ConfigArg;
use crate::exit;

/// Load and validate the configuration, or print every problem and return the exit code.
///
/// Without `--config` (or `OUTLAKE_CONFIG`) no file is read, not even an `outlake.toml` in the
/// current directory; a user who expected one sees "`source.tenant_id` is missing" with no
/// hint why. So the error then says that no file was read, and names `./outlake.toml` if
/// there is one.
pub fn load_config(arg: &ConfigArg) -> Result<outlake_config::Config, u8> {
    outlake_config::load(arg.config.as_deref()).map_err(|e| load_failed(arg, &e))
}

/// [`load_config`] for the commands that only touch storage (`status`, `reset`, `vacuum`):
/// only `[sink]` and `[checkpoint]` are validated, so they run without a tenant or a secret.
pub fn load_storage_config(arg: &ConfigArg) -> Result<StorageConfig, u8> {
    outlake_config::load_storage(arg.config.as_deref()).map_err(|e| load_failed(arg, &e))
}

/// Print a load error, with the notes of [`load_config`]; the exit code.
fn load_failed(arg: &ConfigArg, e: &outlake_config::LoadError) -> u8 {
    crate::logging::error(&e.to_string());
    if arg.config.is_none() {
        crate::logging::note(
            "no config file was read (pass --config outlake.toml, or set OUTLAKE_CONFIG); settings come only from OUTLAKE_* environment variables",
        );
        if std::path::Path::new("outlake.toml").is_file() {
            crate::logging::note("found ./outlake.toml: pass --config outlake.toml to use it");
        }
    }
    exit::CONFIG_OR_AUTH
}

/// A lake that exists, opened from `[sink]` and `[checkpoint]`, with every partition's latest
/// commit.
pub struct ExistingLake {
    pub lake: DynLake,
    /// `sink.url` as configured, for messages.
    pub url: String,
    /// Every partition's latest commit (empty when the lake holds only staged files).
    pub checkpoints: Vec<Checkpoint>,
}

/// Load the storage configuration and open its lake, or print why not and return the exit code.
///
/// Reading commands must not make a lake appear where there is none: a `file://` sink (or
/// checkpoint) folder that does not exist is not created (opening one creates it), and a place
/// with no commit record, no table folder and no staged file is "no lake" (exit 1) rather than
/// an empty lake — a mistyped `sink.url` would otherwise show an empty table and exit 0.
pub async fn open_existing_lake(arg: &ConfigArg) -> Result<ExistingLake, u8> {
    let cfg = load_storage_config(arg)?;
    let url = cfg.sink.url.clone();
    let no_lake = |what: &str| {
        crate::logging::error(&format!("no lake found at {url}: {what}"));
        crate::logging::note("check sink.url (and checkpoint.url) in the config; `outlake sync` creates the lake on its first run");
        exit::FAILURE
    };
    for u in std::iter::once(cfg.sink.url.as_str()).chain(cfg.checkpoint.url.as_deref()) {
        if let Some(dir) = missing_local_dir(u) {
            return Err(no_lake(&format!("the folder {} does not exist", dir.display())));
        }
    }
    let lake = match crate::wiring::open_storage(&cfg.sink, &cfg.checkpoint).await {
        Ok(l) => Arc::new(l),
        Err(e) => {
            crate::logging::error(&format!("{e:#}"));
            return Err(exit::FAILURE);
        }
    };
    let checkpoints = match lake.list(None).await {
        Ok(c) => c,
        Err(e) => {
            crate::logging::error(&format!("reading the commit records of the lake at {url}: {e}"));
            return Err(exit::FAILURE);
        }
    };
    if checkpoints.is_empty() {
        match has_lake_folders(&lake).await {
            Ok(true) => {}
            Ok(false) => return Err(no_lake("it holds no commit record, no table and no staged file")),
            Err(e) => {
                crate::logging::error(&format!("listing the lake at {url}: {e}"));
                return Err(exit::FAILURE);
            }
        }
    }
    Ok(ExistingLake { lake, url, checkpoints })
}

/// The local folder a `file://` URL names, when it does not exist.
fn missing_local_dir(url: &str) -> Option<std::path::PathBuf> {
    let u = url::Url::parse(url).ok()?;
    let dir = (u.scheme() == "file").then(|| u.to_file_path().ok()).flatten()?;
    (!dir.exists()).then_some(dir)
}

/// True when the sink root holds a folder only outlake writes there: a table, the staging
/// folder, or the default checkpoint folder. One listing call.
async fn has_lake_folders(lake: &ObjectLake) -> Result<bool, String> {
    // `store` is a `dyn ObjectStore`: its methods need no import of the object_store crate.
    let listing = lake.data_root().store.list_with_delimiter(None).await.map_err(|e| e.to_string())?;
    let ours = |name: &str| name == STAGING_DIR || name == "_state" || Stream::parse(name).is_some();
    Ok(listing.common_prefixes.iter().any(|p| ours(p.as_ref().trim_end_matches('/'))))
}
