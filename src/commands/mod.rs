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
