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

/// Load and validate the configuration, or print why not and return the exit code.
pub fn load_config(arg: &ConfigArg) -> Result<outlake_config::Config, u8> {
    outlake_config::load(arg.config.as_deref()).map_err(|e| {
        eprintln!("error: {e}");
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
