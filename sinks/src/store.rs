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
//! serve a sink and a checkpoint root on different clouds. `file://` and `memory://` take no
//! options.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use url::Url;

use crate::error::{LakeError, config};

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
pub fn build_store(url: &str, options: &BTreeMap<String, String>) -> Result<StoreRoot, LakeError> {
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
        "file" => {
            let dir = parsed.to_file_path().map_err(|()| config(&shown, format!("`{shown}` is not an absolute local path; write file:///absolute/path")))?;
            std::fs::create_dir_all(&dir)
                .map_err(|e| config(&shown, format!("could not create the directory {}: {e}; check that the parent exists and is writable", dir.display())))?;
            let fs = LocalFileSystem::new_with_prefix(&dir).map_err(|e| config(&shown, format!("could not open {} as a store: {e}", dir.display())))?;
            // Commit records must survive power loss once `commit` returned: fsync files and
            // their directories on every write and rename.
            return Ok(StoreRoot::new(Arc::new(fs.with_fsync(true)), shown));
        }
        "memory" => {
            let name = parsed.host_str().unwrap_or("default");
            let store: Arc<dyn ObjectStore> = memory_store(name);
            return Ok(StoreRoot::new(with_prefix(store, &prefix), shown));
        }
        "s3" | "s3a" => {
            let mut b = AmazonS3Builder::from_env().with_url(url);
            for (k, v) in options.iter().filter(|(k, _)| !foreign(k, "aws_")) {
                let key: AmazonS3ConfigKey = k.parse().map_err(|_| unknown_option(&shown, k, "aws_endpoint, aws_region, aws_allow_http, aws_access_key_id"))?;
                b = b.with_config(key, v);
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
            Arc::new(b.build().map_err(|e| build_failed(&shown, &e, "AZURE_* variables or azure_* options"))?)
        }
        "gs" => {
            let mut b = GoogleCloudStorageBuilder::from_env().with_url(url);
            for (k, v) in options.iter().filter(|(k, _)| !foreign(k, "google_")) {
                let key: GoogleConfigKey = k.parse().map_err(|_| unknown_option(&shown, k, "google_service_account, google_application_credentials"))?;
                b = b.with_config(key, v);
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
    Ok(StoreRoot::new(with_prefix(store, &prefix), shown))
}

/// A key of another provider (`aws_…` when building Azure, say): skipped, so one options map can
/// serve a sink and a checkpoint root on different clouds.
fn foreign(key: &str, own: &str) -> bool {
    ["aws_", "azure_", "google_"].iter().any(|p| *p != own && key.starts_with(p))
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
    fn local_root_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let root_dir = dir.path().join("a/b");
        let url = Url::from_directory_path(&root_dir).unwrap();
        build_store(url.as_str(), &BTreeMap::new()).unwrap();
        assert!(root_dir.is_dir());
    }
}
