//! The delegated token cache: one JSON file per (tenant, app), mode 0600, replaced atomically.
//!
//! Default place: `$XDG_CONFIG_HOME/outlake/tokens-<hash>.json`, else
//! `~/.config/outlake/tokens-<hash>.json`, where `<hash>` is the first 16 hex digits of
//! SHA-256("<tenant>\n<client id>"); `source.token_cache` overrides it. The file holds the
//! access and refresh tokens (as [`Secret`]s), what was granted, and who signed in. It never
//! holds the client secret.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use outlake_config::{Config, Secret};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const CACHE_VERSION: u32 = 1;

/// Who signed in, from the id_token claims (or Graph `/me`). Not secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The user's object id (`oid` claim / `/me` id).
    pub id: Option<String>,
    /// `preferred_username` claim / `/me` userPrincipalName.
    pub upn: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenCache {
    pub version: u32,
    pub tenant_id: String,
    pub client_id: String,
    /// The authority the tokens came from (a cache made against a test double is not used
    /// against the real service).
    pub authority_url: String,
    /// `authorization_code` or `device_code`.
    pub flow: String,
    pub account: Account,
    /// Granted scopes, as the token endpoint last reported them.
    pub scopes: Vec<String>,
    pub access_token: Secret,
    pub access_expires_at: DateTime<Utc>,
    /// Absent when `offline_access` was not granted (then every expiry needs a new sign-in).
    pub refresh_token: Option<Secret>,
    /// When the current refresh token was received (each refresh replaces it).
    pub refresh_token_issued_at: DateTime<Utc>,
    /// When the user signed in interactively.
    pub signed_in_at: DateTime<Utc>,
}

/// Where the cache for this configuration lives.
pub fn cache_path(cfg: &Config) -> Result<PathBuf, String> {
    if let Some(p) = &cfg.source.token_cache {
        return Ok(p.clone());
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(h) => PathBuf::from(h).join(".config"),
            None => {
                return Err("cannot find a place for the token cache: neither XDG_CONFIG_HOME nor HOME is set; set source.token_cache".into());
            }
        },
    };
    Ok(base.join("outlake").join(format!("tokens-{}.json", cache_key(&cfg.source.tenant_id, &cfg.source.client_id))))
}

pub fn cache_key(tenant_id: &str, client_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(tenant_id.as_bytes());
    h.update(b"\n");
    h.update(client_id.as_bytes());
    let d = h.finalize();
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// `Ok(None)` when there is no cache file.
pub fn load(path: &Path) -> Result<Option<TokenCache>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read the token cache {}: {e}", path.display())),
    };
    warn_if_readable_by_others(path);
    // serde_json's error names a line and column, never the value.
    let cache: TokenCache = serde_json::from_slice(&bytes).map_err(|e| {
        format!("the token cache {} is damaged ({e}); remove it with `outlake auth logout` and sign in again: outlake auth login", path.display())
    })?;
    if cache.version != CACHE_VERSION {
        return Err(format!(
            "the token cache {} has version {} (this outlake reads {CACHE_VERSION}); sign in again: outlake auth login",
            path.display(),
            cache.version
        ));
    }
    Ok(Some(cache))
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path) {
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "the token cache is readable by other users; it is rewritten with mode 600 at the next refresh");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

/// Write the cache atomically: a temporary file in the same folder (mode 0600), fsync, rename
/// over the old file, fsync the folder. A crash leaves either the old or the new cache.
pub fn save(path: &Path, cache: &TokenCache) -> Result<(), String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_private_dir(&dir).map_err(|e| format!("cannot create the folder {} for the token cache: {e}", dir.display()))?;
    let json = serde_json::to_vec_pretty(cache).map_err(|e| format!("cannot encode the token cache: {e}"))?;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "tokens.json".into());
    let tmp = dir.join(format!(".{file_name}.{}.{}.tmp", std::process::id(), rand_suffix()));
    let result = (|| -> std::io::Result<()> {
        let mut f = open_private_new(&tmp)?;
        f.write_all(&json)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        sync_dir(&dir);
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("cannot write the token cache {}: {e}", path.display()));
    }
    Ok(())
}

/// Remove the cache. `Ok(false)` when there was none.
pub fn remove(path: &Path) -> Result<bool, String> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(format!("cannot remove the token cache {}: {e}", path.display())),
    }
}

fn rand_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let n = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{n:08x}")
}

#[cfg(unix)]
fn open_private_new(p: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(p)
}

#[cfg(not(unix))]
fn open_private_new(p: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).create_new(true).open(p)
}

#[cfg(unix)]
fn create_private_dir(d: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if d.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(d)
}

#[cfg(not(unix))]
fn create_private_dir(d: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(d)
}

#[cfg(unix)]
fn sync_dir(d: &Path) {
    if let Ok(f) = std::fs::File::open(d) {
        let _ = f.sync_all();
    }
}

#[cfg(not(unix))]
fn sync_dir(_d: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TokenCache {
        let now = Utc::now();
        TokenCache {
            version: CACHE_VERSION,
            tenant_id: "t".into(),
            client_id: "c".into(),
            authority_url: "http://127.0.0.1:1".into(),
            flow: "authorization_code".into(),
            account: Account::default(),
            scopes: vec!["Mail.Read".into()],
            access_token: Secret::new("AT-secret-value"),
            access_expires_at: now,
            refresh_token: Some(Secret::new("RT-secret-value")),
            refresh_token_issued_at: now,
            signed_in_at: now,
        }
    }

    #[test]
    fn debug_hides_tokens() {
        let s = format!("{:?}", sample());
        assert!(!s.contains("AT-secret-value") && !s.contains("RT-secret-value"), "{s}");
    }

    #[test]
    fn key_is_stable_and_short() {
        assert_eq!(cache_key("t", "c"), cache_key("t", "c"));
        assert_ne!(cache_key("t", "c"), cache_key("t2", "c"));
        assert_eq!(cache_key("t", "c").len(), 16);
    }

    #[test]
    fn save_is_private_and_replaces_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("tokens.json");
        let mut c = sample();
        save(&path, &c).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        }
        c.refresh_token = Some(Secret::new("RT-2"));
        save(&path, &c).unwrap();
        let back = load(&path).unwrap().unwrap();
        assert_eq!(back.refresh_token.unwrap().expose(), "RT-2");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names.len(), 1, "no temporary files left: {names:?}");
        assert!(remove(&path).unwrap());
        assert!(!remove(&path).unwrap());
        assert!(load(&path).unwrap().is_none());
    }
}
