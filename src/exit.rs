//! Exit codes, documented in the README. Scripts and schedulers branch on them; and the checks
//! that decide, before a run starts, that it would end in one ([`check_storage_config`],
//! [`check_output_paths`]).

use std::path::Path;

use outlake_config::Config;

/// Everything finished.
pub const OK: u8 = 0;
/// An unexpected error (storage failure, a bug): nothing committed was lost.
pub const FAILURE: u8 = 1;
/// Configuration or credentials are wrong: fix the config or sign in again.
pub const CONFIG_OR_AUTH: u8 = 2;
/// Some mailboxes failed; the others were synced and committed.
pub const PARTIAL: u8 = 3;
/// Interrupted (Ctrl-C / SIGTERM) after committing what was staged.
pub const INTERRUPTED: u8 = 130;

/// Storage settings judged without touching storage: the sink URL, the checkpoint URL and
/// `[sink.options]` ([`outlake_sinks::check_store_config`]). An error here is configuration
/// (exit [`CONFIG_OR_AUTH`]); a store that turns out unreachable or unwritable once opened is a
/// failure (exit [`FAILURE`], the message names its URL). `sync` calls this before opening the
/// lake; `check` reports it per root.
pub fn check_storage_config(cfg: &Config) -> Result<(), String> {
    let roots = [("sink.url", Some(&cfg.sink.url)), ("checkpoint.url", cfg.checkpoint.url.as_ref())];
    for (key, url) in roots {
        if let Some(url) = url {
            outlake_sinks::check_store_config(url, &cfg.sink.options).map_err(|e| format!("{key}: {}", e.message))?;
        }
    }
    Ok(())
}

/// Can `--report` and `--metrics` be written? Checked before a run so that a bad path fails in a
/// second, not after the whole sync: the target's folder must exist and take a new file (a
/// temporary file is created beside the target and removed), and the target must not be a
/// folder. Nothing is left behind. `Err` names the flag, the path and the fix (exit
/// [`CONFIG_OR_AUTH`]).
// Called by `sync` before the run; until then only the tests call it.
pub fn check_output_paths(report: Option<&Path>, metrics: Option<&Path>) -> Result<(), String> {
    for (flag, path) in [("--report", report), ("--metrics", metrics)] {
        if let Some(path) = path {
            check_output_path(flag, path)?;
        }
    }
    Ok(())
}

fn check_output_path(flag: &str, path: &Path) -> Result<(), String> {
    let shown = path.display();
    if path.is_dir() {
        return Err(format!("{flag} {shown} is a folder; give a file path, e.g. {}", path.join("outlake.json").display()));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(format!("{flag} {shown}: the folder {} does not exist; create it or choose another path", parent.display()));
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let probe = parent.join(format!(".{name}.outlake-write-test-{}", std::process::id()));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(f) => {
            drop(f);
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => {
            Err(format!("{flag} {shown}: cannot create a file in {} ({e}); make the folder writable by this user or choose another path", parent.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_paths_are_checked_before_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("report.json");
        check_output_paths(Some(&good), None).unwrap();
        check_output_paths(None, None).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing is left behind");
        // An existing file is fine (it is replaced at the end).
        std::fs::write(&good, "old").unwrap();
        check_output_paths(Some(&good), Some(&dir.path().join("m.prom"))).unwrap();

        let missing = dir.path().join("no/such/folder/report.json");
        let e = check_output_paths(Some(&good), Some(&missing)).unwrap_err();
        assert!(e.starts_with("--metrics") && e.contains("does not exist") && e.contains("no/such/folder"), "{e}");
        let e = check_output_paths(Some(dir.path()), None).unwrap_err();
        assert!(e.contains("--report") && e.contains("is a folder"), "{e}");
        // A "folder" that is a file cannot take a new file, even for root.
        let under_file = good.join("report.json");
        let e = check_output_paths(Some(&under_file), None).unwrap_err();
        assert!(e.contains("--report") && e.contains(&good.display().to_string()), "{e}");
    }

    fn config(sink: &str, extra: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outlake.toml");
        let toml = format!(
            "[source]\ntenant_id = \"contoso.onmicrosoft.com\"\nclient_id = \"00000000-0000-0000-0000-000000000001\"\nclient_secret = \"s\"\nmailboxes = \"all\"\n\n[sink]\nurl = \"{sink}\"\n{extra}"
        );
        std::fs::write(&path, toml).unwrap();
        outlake_config::load(Some(&path)).unwrap()
    }

    /// What `sync` exits 2 for (configuration) and what it leaves to the run (storage, exit 1).
    #[test]
    fn storage_configuration_is_told_from_unusable_storage() {
        let e = check_storage_config(&config("file://lakeP", "")).unwrap_err();
        assert!(e.starts_with("sink.url:") && e.contains("file://lakeP"), "{e}");
        let e = check_storage_config(&config("s3://bucket/lake", "[sink.options]\naws_endpiont = \"http://127.0.0.1:9\"\n")).unwrap_err();
        assert!(e.contains("aws_endpiont"), "{e}");
        let e = check_storage_config(&config("file:///tmp/outlake-lake", "[checkpoint]\nurl = \"file://ckpt\"\n")).unwrap_err();
        assert!(e.starts_with("checkpoint.url:"), "{e}");
        // A folder that cannot be created is storage, found when the lake is opened.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), "x").unwrap();
        check_storage_config(&config(&format!("file://{}/file/lake", dir.path().display()), "")).unwrap();
        check_storage_config(&config("s3://bucket/lake", "[sink.options]\naws_endpoint = \"http://127.0.0.1:9\"\naws_region = \"us-east-1\"\n")).unwrap();
    }

    #[test]
    fn a_read_only_folder_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ro = dir.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        // Root writes anywhere: the check is then the same as the write itself.
        let writable = std::fs::File::create(ro.join("x")).is_ok();
        let got = check_output_paths(Some(&ro.join("report.json")), None);
        assert_eq!(got.is_ok(), writable, "{got:?}");
        if let Err(e) = got {
            assert!(e.contains("cannot create a file"), "{e}");
        }
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}
