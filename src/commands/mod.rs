//! One file per command.
pub mod check;
pub mod demo;
pub mod estimate;
pub mod reset;
pub mod sim;
pub mod status;
pub mod sync;
pub mod vacuum;

use crate::cli::ConfigArg;
use crate::exit;

/// Load and validate the configuration, or print every problem and return the exit code.
///
/// Without `--config` (or `OUTLAKE_CONFIG`) no file is read, not even an `outlake.toml` in the
/// current directory; a user who expected one sees "`source.tenant_id` is missing" with no
/// hint why. So the error then says that no file was read, and names `./outlake.toml` if
/// there is one.
pub fn load_config(arg: &ConfigArg) -> Result<outlake_config::Config, u8> {
    outlake_config::load(arg.config.as_deref()).map_err(|e| {
        eprintln!("error: {e}");
        if arg.config.is_none() {
            eprintln!(
                "note: no config file was read (pass --config outlake.toml, or set OUTLAKE_CONFIG); settings come only from OUTLAKE_* environment variables"
            );
            if std::path::Path::new("outlake.toml").is_file() {
                eprintln!("note: found ./outlake.toml: pass --config outlake.toml to use it");
            }
        }
        exit::CONFIG_OR_AUTH
    })
}

/// Load the configuration and open its lake, or print why not and return the exit code.
pub async fn open_configured_lake(arg: &ConfigArg) -> Result<outlake_pipeline::lake::DynLake, u8> {
    let cfg = load_config(arg)?;
    match crate::wiring::open_lake(&cfg).await {
        Ok(lake) => Ok(lake),
        Err(e) => {
            eprintln!("error: {e:#}");
            Err(exit::FAILURE)
        }
    }
}
