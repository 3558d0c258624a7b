//! `outlake vacuum`: remove staged files no commit references. Needs only `[sink]` and
//! `[checkpoint]`; a place with no lake is an error (exit 1), not "0 files removed".

use std::time::Duration;

use crate::cli::ConfigArg;
use crate::exit;

pub async fn run(config: ConfigArg, older_than_secs: u64) -> u8 {
    let lake = match super::open_existing_lake(&config).await {
        Ok(l) => l.lake,
        Err(code) => return code,
    };
    match lake.vacuum(Duration::from_secs(older_than_secs)).await {
        Ok(removed) => {
            for p in &removed {
                println!("removed {p}");
            }
            println!("{} orphaned staged file(s) removed", removed.len());
            exit::OK
        }
        Err(e) => {
            eprintln!("error: vacuum failed: {e}");
            exit::FAILURE
        }
    }
}
