//! URL → object store.
//!
//! [`build_store`] turns a sink or checkpoint URL into a [`StoreRoot`]: an
//! `Arc<dyn ObjectStore>` whose paths are relative to the URL (the URL's path becomes a prefix),
//! plus the URL itself for messages.
//!
//! | URL | store |
//! |---|---|
//! | `file:///abs/path` | `LocalFileSystem` rooted at the path (created if missing), fsync on |
//! | `memory://name` | a process-wide `InMemory` store per `name` (tests, demos) |
//! | `s3://bucket/prefix` (`s3a://`) | `AmazonS3Builder::from_env()` |
//! | `az://container/prefix`, `abfss://container@account.dfs.core.windows.net/prefix` (`azure://`, `abfs://`, `adl://`) | `MicrosoftAzureBuilder::from_env()` |
//! | `gs://bucket/prefix` | `GoogleCloudStorageBuilder::from_env()` |
//!
//! Cloud stores read credentials and endpoints from object_store's standard environment
//! variables (`AWS_*`, `AZURE_*`, `GOOGLE_*`), then from the `options` map, whose keys are
//! object_store config keys (`aws_endpoint`, `aws_allow_http`, `azure_storage_use_emulator`,
//! `google_service_account`…). An unknown key is an error, so a typo never silently falls back
//! to a default; keys of another provider (`azure_…` for an S3 URL) are skipped, so one map can
//! serve a sink and a checkpoint root on different clouds (a key that no provider knows is
//! refused by every store, `file://` and `memory://` included, which otherwise take no options).
//!
//! [`check_store_config`] is the part of [`build_store`] that needs no storage (configuration
//! errors); [`probe_store`] writes and deletes one object, as `outlake check` does.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig};
use url::Url;

use crate::error::{LakeError, config, storage};
use crate::parquet::layout::STAGING_DIR;

/// A store and the URL its paths are relative to.
#[derive(Debug, Clone)]
pub struct StoreRoot {
    /// Paths given to this store are relative to `url`.
    pub store: Arc<dyn ObjectStore>,
    /// The root URL, without a trailing slash (for messages only).
    pub url: String,
}

impl StoreRoot {
    pub fn new(store: Arc<dyn ObjectStore>, url: impl Into<String>) -> Self {
        StoreRoot { store, url: url.into().trim_end_matches('/').to_string() }
    }

    /// The full URL of a path in this store, for messages.
    pub fn url_of(&self, path: &Path) -> String {
        format!("{}/{}", self.url, path)
    }

    /// A view of this store under `sub` (used for the default checkpoint root).
    pub fn child(&self, sub: &str) -> StoreRoot {
        StoreRoot { store: Arc::new(PrefixStore::new(self.store.clone(), sub)), url: format!("{}/{}", self.url, sub) }
    }
}

static MEMORY: LazyLock<Mutex<HashMap<String, Arc<InMemory>>>> = LazyLock::new(Default::default);

/// The process-wide in-memory store named `name` (what `memory://name` opens).
pub fn memory_store(name: &str) -> Arc<InMemory> {
    let mut stores = MEMORY.lock().unwrap_or_else(|p| p.into_inner());
    stores.entry(name.to_string()).or_insert_with(|| Arc::new(InMemory::new())).clone()
}

/// Build the store a URL names. See the module docs for schemes and options.
///
/// Two kinds of failure, told apart by where they happen: what [`check_store_config`] refuses
/// is configuration (the URL, its scheme or path, an option); creating the local root folder
/// afterwards is storage (the folder cannot be created or written).
pub fn build_store(url: &str, options: &BTreeMap<String, String>) -> Result<StoreRoot, LakeError> {
    resolve(url, options, None)?.open()
}

/// Is this a storage URL and option set the sink can use? Everything [`build_store`] checks
/// that needs no storage: the URL, its scheme and path, every option key, and the cloud
/// client's configuration. No request is made and no folder created, so an error here is a
/// configuration error (exit 2), never an unreachable or unwritable store.
pub fn check_store_config(url: &str, options: &BTreeMap<String, String>) -> Result<(), LakeError> {
    resolve(url, options, None).map(|_| ())
}

/// Retries of a probe: a check must answer in seconds, where a sync rides out a minute of
/// network trouble (object_store's default is 10 retries within 3 minutes).
fn probe_retry() -> RetryConfig {
    RetryConfig { backoff: BackoffConfig::default(), max_retries: 1, retry_timeout: Duration::from_secs(10) }
}

/// Longest a probe may take in all, whatever the store's own timeouts.
const PROBE_DEADLINE: Duration = Duration::from_secs(30);

/// Build the store `url` names as [`build_store`] does (with few retries), then write a small
/// object under `_staging/` with `PutMode::Create` (the mode commit records are written with)
/// and delete it. Returns the URL of the probe object. A sync writes staged files there (on the
/// sink root) and commit records with the same put mode (on the checkpoint root), so a store
/// that passes takes both. A probe left behind by a crash is removed by `outlake vacuum`.
pub async fn probe_store(url: &str, options: &BTreeMap<String, String>) -> Result<String, LakeError> {
    let root = resolve(url, options, Some(probe_retry()))?.open()?;
    let path = Path::from(format!("{STAGING_DIR}/outlake-check-{}.probe", uuid::Uuid::now_v7()));
    let at = root.url_of(&path);
    let io = async {
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        root.store.put_opts(&path, PutPayload::from_static(b"outlake check\n"), opts).await.map_err(|e| match e {
            object_store::Error::NotImplemented { .. } => storage(
                "write (create-if-absent)",
                &at,
                &e,
                "commit records need create-if-absent puts: use a store that supports them (AWS S3, Azure, GCS, MinIO), or set aws_conditional_put for another S3-compatible store",
            ),
            e => storage("write", &at, &e, PROBE_FIX),
        })?;
        root.store.delete(&path).await.map_err(|e| storage("delete", &at, &e, PROBE_FIX))
    };
    match tokio::time::timeout(PROBE_DEADLINE, io).await {
        Ok(r) => r.map(|()| at),
        Err(_) => Err(storage("write", &at, &format!("no answer within {}s", PROBE_DEADLINE.as_secs()), PROBE_FIX)),
    }
}

const PROBE_FIX: &str =
    "check the endpoint (aws_endpoint, azure_storage_account_name, …), the credentials, that the bucket or container exists, and network access";

/// A store URL and its options, checked; [`Resolved::open`] does the I/O.
enum Resolved {
    Local { dir: std::path::PathBuf, shown: String },
    Ready(StoreRoot),
}

impl Resolved {
    fn open(self) -> Result<StoreRoot, LakeError> {
        match self {
            Resolved::Ready(root) => Ok(root),
            Resolved::Local { dir, shown } => {
                let at = dir.display().to_string();
                std::fs::create_dir_all(&dir).map_err(|e| {
                    storage("create the directory", &at, &e, "create it, or make its parent writable by this user, or point the URL at a writable folder")
                })?;
                let fs = LocalFileSystem::new_with_prefix(&dir).map_err(|e| storage("open the directory", &at, &e, "check that it is a readable folder"))?;
                // Commit records must survive power loss once `commit` returned: fsync files
                // and their directories on every write and rename.
                Ok(StoreRoot::new(Arc::new(fs.with_fsync(true)), shown))
            }
        }
    }
}

/// Everything [`build_store`] decides without touching storage; `retry` replaces the cloud
/// client's retry settings.
fn resolve(url: &str, options: &BTreeMap<String, String>, retry: Option<RetryConfig>) -> Result<Resolved, LakeError> {
    let parsed = Url::parse(url).map_err(|e| {
        config(
            url,
            format!("`{url}` is not a valid storage URL ({e}); use e.g. file:///data/outlake, s3://bucket/prefix, az://container/prefix or gs://bucket/prefix"),
        )
    })?;
    let shown = display_url(&parsed);
    let prefix = Path::from_url_path(parsed.path())
        .map_err(|e| config(&shown, format!("the path of `{shown}` is not a valid object path ({e}); remove empty segments, `.` and `..`")))?;
    let store: Arc<dyn ObjectStore> = match parsed.scheme() {
        "file" | "memory" => {
            // No options apply, but a misspelt one is still refused: it may be meant for a cloud
            // checkpoint root, and a typo there must not pass unnoticed.
            if let Some(k) = options.keys().find(|k| !known_anywhere(k)) {
                return Err(unknown_option(&shown, k, "aws_endpoint, azure_storage_account_name, google_service_account"));
            }
            if parsed.scheme() == "memory" {
                let name = parsed.host_str().unwrap_or("default");
                let store: Arc<dyn ObjectStore> = memory_store(name);
                return Ok(Resolved::Ready(StoreRoot::new(with_prefix(store, &prefix), shown)));
            }
            let dir = parsed.to_file_path().map_err(|()| {
                config(
                    &shown,
                    // As written (a file URL holds no secret): `shown` lower-cases the host.
                    format!("`{url}` is not an absolute local path (a file URL has three slashes and no host); write file:///absolute/path"),
                )
            })?;
            return Ok(Resolved::Local { dir, shown });
        }
        "s3" | "s3a" => {
            let mut b = AmazonS3Builder::from_env().with_url(url);
            for (k, v) in options.iter().filter(|(k, _)| !foreign(k, "aws_")) {
                let key: AmazonS3ConfigKey = k.parse().map_err(|_| unknown_option(&shown, k, "aws_endpoint, aws_region, aws_allow_http, aws_access_key_id"))?;
                b = b.with_config(key, v);
            }
            if let Some(r) = retry {
                b = b.with_retry(r);
            }
            Arc::new(b.build().map_err(|e| build_failed(&shown, &e, "AWS_* variables or aws_* options"))?)
        }
        "az" | "azure" | "abfs" | "abfss" | "adl" => {
            let mut b = MicrosoftAzureBuilder::from_env().with_url(url);
            for (k, v) in options.iter().filter(|(k, _)| !foreign(k, "azure_")) {
                let key: AzureConfigKey = k.parse().map_err(|_| {
                    unknown_option(&shown, k, "azure_storage_account_name, azure_storage_account_key, azure_storage_use_emulator, azure_client_id")
                })?;
                b = b.with_config(key, v);
            }
            if let Some(r) = retry {
                b = b.with_retry(r);
            }
            Arc::new(b.build().map_err(|e| build_failed(&shown, &e, "AZURE_* variables or azure_* options"))?)
        }
        "gs" => {
            let mut b = GoogleCloudStorageBuilder::from_env().with_url(url);
            for (k, v) in options.iter().filter(|(k, _)| !foreign(k, "google_")) {
                let key: GoogleConfigKey = k.parse().map_err(|_| unknown_option(&shown, k, "google_service_account, google_application_credentials"))?;
                b = b.with_config(key, v);
            }
            if let Some(r) = retry {
                b = b.with_retry(r);
            }
            Arc::new(b.build().map_err(|e| build_failed(&shown, &e, "GOOGLE_* variables or google_* options"))?)
        }
        other => {
            return Err(config(
                &shown,
                format!("unsupported storage URL scheme `{other}:` in `{shown}`; use file://, s3://, az://, abfss://, gs:// or memory://"),
            ));
        }
    };
    Ok(Resolved::Ready(StoreRoot::new(with_prefix(store, &prefix), shown)))
}

/// A key some provider knows (what a store that takes no options still checks).
fn known_anywhere(key: &str) -> bool {
    key.parse::<AmazonS3ConfigKey>().is_ok() || key.parse::<AzureConfigKey>().is_ok() || key.parse::<GoogleConfigKey>().is_ok()
}

/// A key of another provider (`aws_…` when building Azure, say): skipped, so one options map can
/// serve a sink and a checkpoint root on different clouds.
///
/// Only a key that parses as that provider's counts: a misspelt `azure_storage_acount_name`
/// is refused by every store, not skipped by the S3 one.
fn foreign(key: &str, own: &str) -> bool {
    match ["aws_", "azure_", "google_"].into_iter().find(|p| *p != own && key.starts_with(p)) {
        Some("aws_") => key.parse::<AmazonS3ConfigKey>().is_ok(),
        Some("azure_") => key.parse::<AzureConfigKey>().is_ok(),
        Some(_) => key.parse::<GoogleConfigKey>().is_ok(),
        None => false,
    }
}

fn with_prefix(store: Arc<dyn ObjectStore>, prefix: &Path) -> Arc<dyn ObjectStore> {
    if prefix.as_ref().is_empty() { store } else { Arc::new(PrefixStore::new(store, prefix.clone())) }
}

/// The URL without password, query or fragment (they may hold secrets such as SAS tokens).
pub(crate) fn display_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string().trim_end_matches('/').to_string()
}

fn unknown_option(url: &str, key: &str, examples: &str) -> LakeError {
    config(url, format!("unknown storage option `{key}` for {url}; options are object_store config keys such as {examples}"))
}

fn build_failed(url: &str, err: &object_store::Error, source: &str) -> LakeError {
    config(url, format!("could not configure the store for {url}: {err}; check the URL and the {source}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn s3_url_with_options_builds_and_keeps_prefix_in_url() {
        let root = build_store(
            "s3://bucket/some/prefix/",
            &opts(&[("aws_endpoint", "http://127.0.0.1:9000"), ("aws_allow_http", "true"), ("aws_region", "us-east-1")]),
        )
        .unwrap();
        assert_eq!(root.url, "s3://bucket/some/prefix");
        assert_eq!(root.url_of(&Path::from("a/b.json")), "s3://bucket/some/prefix/a/b.json");
        assert!(root.store.to_string().contains("some/prefix"), "{}", root.store);
        let bare = build_store("s3://bucket", &opts(&[("aws_region", "us-east-1")])).unwrap();
        assert!(bare.store.to_string().contains("bucket"), "{}", bare.store);
    }

    #[test]
    fn unknown_option_is_named() {
        let err = build_store("s3://bucket/p", &opts(&[("aws_endpiont", "x")])).unwrap_err();
        assert!(err.message.contains("aws_endpiont"), "{}", err.message);
    }

    #[test]
    fn azure_urls_build_with_emulator_option() {
        let o = opts(&[("azure_storage_use_emulator", "true")]);
        let az = build_store("az://container/prefix", &o).unwrap();
        assert_eq!(az.url, "az://container/prefix");
        let abfss = build_store("abfss://container@account.dfs.core.windows.net", &opts(&[("azure_storage_account_key", "a2V5")])).unwrap();
        assert!(abfss.store.to_string().contains("container"), "{}", abfss.store);
    }

    #[test]
    fn gs_url_builds_with_skip_signature() {
        let root = build_store("gs://bucket/p", &opts(&[("google_skip_signature", "true")])).unwrap();
        assert_eq!(root.url, "gs://bucket/p");
    }

    #[test]
    fn other_providers_options_are_skipped() {
        let o = opts(&[("aws_region", "us-east-1"), ("azure_storage_use_emulator", "true")]);
        build_store("s3://bucket/p", &o).unwrap();
        build_store("az://container/p", &o).unwrap();
    }

    #[test]
    fn unsupported_scheme_is_named() {
        let err = build_store("ftp://host/x", &BTreeMap::new()).unwrap_err();
        assert!(err.message.contains("ftp:"), "{}", err.message);
    }

    #[test]
    fn secrets_in_url_are_not_shown() {
        let u = Url::parse("az://c/p?sig=SECRET").unwrap();
        assert_eq!(display_url(&u), "az://c/p");
    }

    #[test]
    fn memory_stores_are_shared_by_name() {
        let a = build_store("memory://shared-by-name", &BTreeMap::new()).unwrap();
        let b = build_store("memory://shared-by-name", &BTreeMap::new()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            use object_store::ObjectStoreExt;
            a.store.put(&Path::from("x"), "1".into()).await.unwrap();
            assert!(b.store.head(&Path::from("x")).await.is_ok());
        });
    }

    #[test]
    fn configuration_is_checked_without_touching_storage() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("not/yet");
        let url = Url::from_directory_path(&target).unwrap();
        check_store_config(url.as_str(), &BTreeMap::new()).unwrap();
        assert!(!target.exists(), "a configuration check creates nothing");
        // A host instead of an absolute path: `file://lakeP` is a configuration error.
        let err = check_store_config("file://lakeP", &BTreeMap::new()).unwrap_err();
        assert!(err.message.contains("file:///absolute/path"), "{}", err.message);
        // A misspelt option is refused whatever store it is given to.
        for url in ["s3://bucket/p", "file:///tmp/x", "memory://m"] {
            let err = check_store_config(url, &opts(&[("aws_endpiont", "http://127.0.0.1:9")])).unwrap_err();
            assert!(err.message.contains("aws_endpiont"), "{url}: {}", err.message);
        }
        let err = check_store_config("s3://bucket/p", &opts(&[("aws_region", "us-east-1"), ("azure_storage_acount_name", "x")])).unwrap_err();
        assert!(err.message.contains("azure_storage_acount_name"), "another provider's typo is not skipped: {}", err.message);
        check_store_config("file:///tmp/x", &opts(&[("aws_region", "us-east-1")])).unwrap();
    }

    #[test]
    fn a_folder_that_cannot_be_created_is_a_storage_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), "x").unwrap();
        let url = Url::from_directory_path(dir.path().join("file/lake")).unwrap();
        check_store_config(url.as_str(), &BTreeMap::new()).unwrap();
        let err = build_store(url.as_str(), &BTreeMap::new()).unwrap_err();
        assert!(err.message.contains(&dir.path().join("file/lake").display().to_string()), "{}", err.message);
    }

    #[tokio::test]
    async fn probe_writes_and_deletes_one_object() {
        let dir = tempfile::tempdir().unwrap();
        let url = Url::from_directory_path(dir.path().join("lake")).unwrap();
        let at = probe_store(url.as_str(), &BTreeMap::new()).await.unwrap();
        assert!(at.contains("/_staging/outlake-check-"), "{at}");
        let staging = dir.path().join("lake/_staging");
        assert_eq!(std::fs::read_dir(&staging).map(|d| d.count()).unwrap_or(0), 0, "the probe is deleted");
    }

    #[tokio::test]
    async fn probe_of_a_closed_port_fails_fast_naming_the_url() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let o = opts(&[
            ("aws_endpoint", &format!("http://127.0.0.1:{port}")),
            ("aws_allow_http", "true"),
            ("aws_region", "us-east-1"),
            ("aws_access_key_id", "k"),
            ("aws_secret_access_key", "s"),
        ]);
        let t0 = std::time::Instant::now();
        let err = probe_store("s3://bucket/p", &o).await.unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(20), "took {:?}", t0.elapsed());
        assert!(err.message.contains("s3://bucket/p/_staging/"), "{}", err.message);
    }

    #[test]
    fn local_root_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let root_dir = dir.path().join("a/b");
        let url = Url::from_directory_path(&root_dir).unwrap();
        build_store(url.as_str(), &BTreeMap::new()).unwrap();
        assert!(root_dir.is_dir());
    }
}
