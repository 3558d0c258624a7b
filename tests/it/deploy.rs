//! The deployment in the repository — `deploy/kubernetes/*.yaml` and the `Dockerfile` — checked
//! for what a worker needs, the way Kubernetes would hand it over:
//!
//! - every manifest parses (multi-document YAML) and names its kind;
//! - each worker (the CronJob's pod, the Indexed Job's pod) runs the image's `outlake` with
//!   `sync --config <path>`, the path is where the ConfigMap is mounted and the ConfigMap has
//!   that key; the config passes outlake's own validation (`outlake_config::validate`) with the
//!   environment the pod sets and the files its Secret volumes hold — so the client secret is
//!   found, and it is the Secret's value;
//! - the Indexed Job is `completionMode: Indexed` with `completions = parallelism = N` and a
//!   `--shard` that parses, for every pod index, to a different shard of N; the CronJob runs one
//!   worker (no `--shard`, or `all`) and never two at once;
//! - pods run as non-root on a read-only root filesystem with an emptyDir at /tmp, with a memory
//!   request that covers `limits.max_buffered_mb`; images are the same everywhere, tagged with
//!   this release, and match the kustomization;
//! - the Dockerfile's final stage runs `outlake` as a numeric non-root user.
//!
//! The checks collect problems instead of stopping at the first one; a negative control feeds
//! them broken copies of the manifests and expects each breakage to be named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use base64::Engine;
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use outlake_config::Shard;
use outlake_config::raw::RawConfig;
use outlake_config::validated::SecretFileReader;
use serde_json::{Value, json};
use yaml_rust2::{Yaml, YamlLoader};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes");
const DOCKERFILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile");
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Graph's per-app limit in a tenant: 130,000 requests per 10 seconds, shared by all workers.
const APP_REQUESTS_PER_SEC: u64 = 13_000;
/// What a worker needs besides `limits.max_buffered_mb`: the process, the HTTP client, a
/// re-baseline's key index (32 bytes a key). The benches stay well below it.
const MEMORY_BESIDES_BUFFER: u64 = 256 << 20;

/// One YAML document of one file.
#[derive(Clone, Debug)]
struct Doc {
    file: String,
    value: Value,
}

#[derive(Clone, Debug)]
struct Deployment {
    docs: Vec<Doc>,
    dockerfile: String,
    /// The manifest files present, for the kustomization's `resources`.
    files: BTreeSet<String>,
}

fn read_deployment() -> Deployment {
    let mut docs = Vec::new();
    let mut files = BTreeSet::new();
    for entry in std::fs::read_dir(DIR).expect("deploy/kubernetes exists") {
        let path = entry.unwrap().path();
        if !matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            continue;
        }
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{file} is not YAML: {e}"));
        docs.extend(parsed.iter().filter(|y| !y.is_null()).map(|y| Doc { file: file.clone(), value: to_json(y) }));
        files.insert(file);
    }
    docs.sort_by(|a, b| a.file.cmp(&b.file));
    Deployment { docs, dockerfile: std::fs::read_to_string(DOCKERFILE).expect("a Dockerfile at the root"), files }
}

fn to_json(y: &Yaml) -> Value {
    match y {
        Yaml::Real(s) => s.parse::<f64>().map(|f| json!(f)).unwrap_or_else(|_| json!(s)),
        Yaml::Integer(i) => json!(i),
        Yaml::String(s) => json!(s),
        Yaml::Boolean(b) => json!(b),
        Yaml::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) | Yaml::Real(s) => s.clone(),
                        other => to_json(other).to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Yaml::Null | Yaml::Alias(_) | Yaml::BadValue => Value::Null,
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn name_of(v: &Value) -> &str {
    str_at(v, "/metadata/name").unwrap_or("(no name)")
}

/// `512Mi`, `1Gi`, `1G`, `500M`, `1048576` → bytes.
fn quantity(q: &Value) -> Option<u64> {
    let s = match q {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let units: [(&str, u64); 8] =
        [("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("Ti", 1 << 40), ("k", 1_000), ("M", 1_000_000), ("G", 1_000_000_000), ("T", 1_000_000_000_000)];
    for (suffix, factor) in units {
        if let Some(n) = s.strip_suffix(suffix) {
            return n.parse::<u64>().ok().map(|n| n * factor);
        }
    }
    s.parse().ok()
}

/// The value of `--flag v` or `--flag=v` in `args`.
fn flag(args: &[String], name: &str) -> Option<String> {
    let eq = format!("{name}=");
    args.iter().enumerate().find_map(|(i, a)| if a == name { args.get(i + 1).cloned() } else { a.strip_prefix(&eq).map(str::to_string) })
}

/// The files a pod's volumes put at each path (ConfigMap and Secret volumes), by path.
struct Files(BTreeMap<String, String>);

impl SecretFileReader for Files {
    fn read(&self, path: &str) -> std::io::Result<String> {
        self.0.get(path).cloned().ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("no volume of the pod puts a file at {path}")))
    }
}

/// What the final stage of the Dockerfile says.
struct Image {
    user: Option<String>,
    entrypoint: Option<String>,
    copies_outlake: bool,
}

fn final_stage(dockerfile: &str) -> Image {
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let start = lines.iter().rposition(|l| l.to_ascii_uppercase().starts_with("FROM ")).unwrap_or(0);
    let mut image = Image { user: None, entrypoint: None, copies_outlake: false };
    for l in &lines[start..] {
        let (word, rest) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
        match word.to_ascii_uppercase().as_str() {
            "USER" => image.user = Some(rest.trim().to_string()),
            "ENTRYPOINT" => image.entrypoint = Some(rest.trim().to_string()),
            "COPY" => image.copies_outlake |= rest.contains("--from=") && rest.contains("outlake"),
            _ => {}
        }
    }
    image
}

/// Every problem with the deployment, in words; empty when a worker gets what it needs.
fn problems(d: &Deployment) -> Vec<String> {
    let mut out = Vec::new();
    let of_kind = |kind: &str| d.docs.iter().filter(|doc| str_at(&doc.value, "/kind") == Some(kind)).collect::<Vec<_>>();
    for doc in &d.docs {
        if str_at(&doc.value, "/kind").is_none() || str_at(&doc.value, "/apiVersion").is_none() {
            out.push(format!("{}: a document without kind or apiVersion", doc.file));
        }
    }
    let config_maps = of_kind("ConfigMap");
    let secrets = of_kind("Secret");
    let cron_jobs = of_kind("CronJob");
    let jobs = of_kind("Job");
    if !config_maps.iter().any(|c| c.value.pointer("/data/outlake.toml").is_some()) {
        out.push("no ConfigMap holds outlake.toml".into());
    }
    if secrets.is_empty() {
        out.push("no Secret (an example with a placeholder value) for the client secret".into());
    }
    if cron_jobs.len() != 1 {
        out.push(format!("expected one CronJob, found {}", cron_jobs.len()));
    }
    if jobs.len() != 1 {
        out.push(format!("expected one (Indexed) Job, found {}", jobs.len()));
    }

    let mut images = BTreeSet::new();
    for cron in &cron_jobs {
        let v = &cron.value;
        let what = format!("{}: CronJob {}", cron.file, name_of(v));
        if str_at(v, "/spec/concurrencyPolicy") != Some("Forbid") {
            out.push(format!(
                "{what}: concurrencyPolicy is {:?}, not Forbid: a second run would find every mailbox leased",
                str_at(v, "/spec/concurrencyPolicy")
            ));
        }
        match v.pointer("/spec/jobTemplate/spec/template/spec") {
            None => out.push(format!("{what}: no pod template")),
            Some(pod) => match check_worker(&what, pod, None, &config_maps, &secrets, &mut out) {
                Some((image, Shard::All, _)) => {
                    images.insert(image);
                }
                Some((_, shard, _)) => out.push(format!("{what}: one worker takes every mailbox, but it runs --shard {shard}")),
                None => {}
            },
        }
    }
    for job in &jobs {
        let v = &job.value;
        let what = format!("{}: Job {}", job.file, name_of(v));
        if str_at(v, "/spec/completionMode") != Some("Indexed") {
            out.push(format!("{what}: completionMode is {:?}, not Indexed: its pods get no JOB_COMPLETION_INDEX", str_at(v, "/spec/completionMode")));
        }
        let completions = v.pointer("/spec/completions").and_then(Value::as_u64);
        let parallelism = v.pointer("/spec/parallelism").and_then(Value::as_u64);
        if completions.is_none() || completions != parallelism {
            out.push(format!("{what}: completions ({completions:?}) and parallelism ({parallelism:?}) must be the same N: every shard's worker runs at once"));
        }
        let Some(pod) = v.pointer("/spec/template/spec") else {
            out.push(format!("{what}: no pod template"));
            continue;
        };
        let workers = completions.unwrap_or(1);
        let Some((image, shard, spec)) = check_worker(&what, pod, Some(workers), &config_maps, &secrets, &mut out) else { continue };
        images.insert(image);
        match shard {
            Shard::Hashed { count, .. } => {
                if Some(count as u64) != completions {
                    out.push(format!("{what}: --shard {spec} has {count} shards but completions is {completions:?}: shards would be left out or run twice"));
                }
                // Every pod index names a different shard.
                let taken: BTreeSet<u32> = (0..workers)
                    .filter_map(|i| match Shard::parse(&spec, Some(&i.to_string())) {
                        Ok(Shard::Hashed { index, .. }) => Some(index),
                        _ => None,
                    })
                    .collect();
                if taken.len() as u64 != workers {
                    out.push(format!("{what}: --shard {spec} gives the {workers} pods {} different shards; use index/N", taken.len()));
                }
            }
            Shard::Any { .. } => {}
            Shard::All => out.push(format!("{what}: every pod would sync every mailbox; pass --shard index/{workers} (or any)")),
        }
    }

    if images.len() > 1 {
        out.push(format!("the workers run different images: {images:?}"));
    }
    for image in &images {
        let (repo, tag) = image.rsplit_once(':').unwrap_or((image, ""));
        if repo.rsplit('/').next() != Some("outlake") {
            out.push(format!("image {image}: not an outlake image"));
        }
        if tag != VERSION {
            out.push(format!("image {image}: tagged {tag:?}, not this release ({VERSION})"));
        }
    }
    for k in of_kind("Kustomization") {
        for r in k.value.pointer("/resources").and_then(Value::as_array).into_iter().flatten() {
            if !r.as_str().is_some_and(|r| d.files.contains(r)) {
                out.push(format!("{}: resource {r} is not a file of deploy/kubernetes", k.file));
            }
        }
        for entry in k.value.pointer("/images").and_then(Value::as_array).into_iter().flatten() {
            let name = str_at(entry, "/name").unwrap_or_default();
            let tag = str_at(entry, "/newTag");
            if !images.iter().any(|i| i.rsplit_once(':').map(|(repo, _)| repo) == Some(name)) {
                out.push(format!("{}: images names {name:?}, which no workload runs ({images:?})", k.file));
            }
            if tag.is_some_and(|t| t != VERSION) {
                out.push(format!("{}: newTag {tag:?} is not this release ({VERSION})", k.file));
            }
        }
    }

    let image = final_stage(&d.dockerfile);
    match image.user.as_deref().map(|u| u.split(':').next().unwrap_or("").trim().to_string()) {
        None => out.push("Dockerfile: the final stage has no USER: the container would run as root".into()),
        Some(u) if u == "root" || u == "0" => out.push(format!("Dockerfile: the final stage runs as {u}")),
        Some(u) if u.parse::<u32>().is_err() => {
            out.push(format!("Dockerfile: USER {u} is a name; runAsNonRoot can only verify a numeric user"));
        }
        Some(_) => {}
    }
    if !image.entrypoint.as_deref().is_some_and(|e| e.contains("outlake")) {
        out.push(format!("Dockerfile: the final stage's ENTRYPOINT ({:?}) does not run outlake", image.entrypoint));
    }
    if !image.copies_outlake {
        out.push("Dockerfile: the final stage copies no outlake binary from the build stage".into());
    }
    out
}

/// Checks one worker's pod; returns its image, its shard (parsed as pod 0 would) and the
/// `--shard` text, when the pod has an outlake container to speak of.
fn check_worker(
    what: &str,
    pod: &Value,
    workers: Option<u64>,
    config_maps: &[&Doc],
    secrets: &[&Doc],
    out: &mut Vec<String>,
) -> Option<(String, Shard, String)> {
    let mut problem = |m: String| out.push(format!("{what}: {m}"));
    if !matches!(str_at(pod, "/restartPolicy"), Some("Never" | "OnFailure")) {
        problem(format!("restartPolicy {:?}: a Job's pods need Never or OnFailure", str_at(pod, "/restartPolicy")));
    }
    let containers = pod.pointer("/containers").and_then(Value::as_array).cloned().unwrap_or_default();
    let Some(c) = containers.iter().find(|c| str_at(c, "/name") == Some("outlake")) else {
        problem("no container named outlake".into());
        return None;
    };
    let image = str_at(c, "/image").unwrap_or_default().to_string();
    let strings = |p: &str| c.pointer(p).and_then(Value::as_array).map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect::<Vec<_>>());
    if let Some(cmd) = strings("/command")
        && !cmd.first().is_some_and(|c| c.ends_with("outlake"))
    {
        problem(format!("command {cmd:?} replaces the image's outlake entrypoint"));
    }
    let args = strings("/args").unwrap_or_default();
    if args.first().map(String::as_str) != Some("sync") {
        problem(format!("args {args:?} do not start with sync"));
    }

    // The environment as the pod gets it: values, and references to Secrets and ConfigMaps.
    let lookup = |docs: &[&Doc], name: &str, key: &str| -> Option<String> {
        let doc = docs.iter().find(|doc| name_of(&doc.value) == name)?;
        data_of(&doc.value).remove(key)
    };
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for e in c.pointer("/env").and_then(Value::as_array).into_iter().flatten() {
        let name = str_at(e, "/name").unwrap_or_default().to_string();
        if let Some(v) = str_at(e, "/value") {
            env.insert(name, v.to_string());
        } else if let Some(r) = e.pointer("/valueFrom/secretKeyRef") {
            let (sn, key) = (str_at(r, "/name").unwrap_or_default(), str_at(r, "/key").unwrap_or_default());
            match lookup(secrets, sn, key) {
                Some(v) => {
                    env.insert(name, v);
                }
                None => problem(format!("env {name} refers to key {key:?} of Secret {sn:?}, which has no such key")),
            }
        } else if let Some(r) = e.pointer("/valueFrom/configMapKeyRef") {
            let (cn, key) = (str_at(r, "/name").unwrap_or_default(), str_at(r, "/key").unwrap_or_default());
            match lookup(config_maps, cn, key) {
                Some(v) => {
                    env.insert(name, v);
                }
                None => problem(format!("env {name} refers to key {key:?} of ConfigMap {cn:?}, which has no such key")),
            }
        }
    }

    // The files the pod's volumes put in place, and what is mounted where.
    let volumes = pod.pointer("/volumes").and_then(Value::as_array).cloned().unwrap_or_default();
    let mounts = c.pointer("/volumeMounts").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut files = BTreeMap::new();
    let mut config_dirs = BTreeSet::new();
    let mut tmp_is_empty_dir = false;
    for m in &mounts {
        let (vname, path) = (str_at(m, "/name").unwrap_or_default(), str_at(m, "/mountPath").unwrap_or_default().trim_end_matches('/'));
        let Some(vol) = volumes.iter().find(|v| str_at(v, "/name") == Some(vname)) else {
            problem(format!("volumeMount {vname} names no volume"));
            continue;
        };
        if path == "/tmp" && vol.pointer("/emptyDir").is_some() {
            tmp_is_empty_dir = true;
        }
        let source = if let Some(s) = vol.pointer("/secret") {
            let sn = str_at(s, "/secretName").unwrap_or_default();
            let Some(doc) = secrets.iter().find(|doc| name_of(&doc.value) == sn) else {
                problem(format!("volume {vname} mounts Secret {sn:?}, which is not in deploy/kubernetes"));
                continue;
            };
            (s, data_of(&doc.value))
        } else if let Some(cm) = vol.pointer("/configMap") {
            let cn = str_at(cm, "/name").unwrap_or_default();
            let Some(doc) = config_maps.iter().find(|doc| name_of(&doc.value) == cn) else {
                problem(format!("volume {vname} mounts ConfigMap {cn:?}, which is not in deploy/kubernetes"));
                continue;
            };
            config_dirs.insert(path.to_string());
            (cm, data_of(&doc.value))
        } else {
            continue;
        };
        let (spec, data) = source;
        // `items` picks keys and names their files; without it every key is a file.
        let placed: Vec<(String, String)> = match spec.pointer("/items").and_then(Value::as_array) {
            Some(items) => {
                items.iter().map(|i| (str_at(i, "/key").unwrap_or_default().to_string(), str_at(i, "/path").unwrap_or_default().to_string())).collect()
            }
            None => data.keys().map(|k| (k.clone(), k.clone())).collect(),
        };
        for (key, rel) in placed {
            match data.get(&key) {
                Some(v) => {
                    files.insert(format!("{path}/{rel}"), v.clone());
                }
                None => problem(format!("volume {vname} lists key {key:?}, which its source does not have")),
            }
        }
    }
    if !tmp_is_empty_dir {
        problem("no emptyDir at /tmp (the root filesystem is read-only)".into());
    }

    // --config: a file the ConfigMap volume puts there.
    let config_path = flag(&args, "--config").or_else(|| env.get("OUTLAKE_CONFIG").cloned());
    let toml = match &config_path {
        None => {
            problem("no --config: outlake would read only OUTLAKE_* variables".into());
            None
        }
        Some(p) => {
            let dir = Path::new(p).parent().map(|d| d.to_string_lossy().into_owned()).unwrap_or_default();
            if !config_dirs.contains(&dir) {
                problem(format!("--config {p}: no ConfigMap is mounted at {dir}"));
            }
            let t = files.get(p).cloned();
            if t.is_none() {
                problem(format!("--config {p}: the mounted ConfigMap has no such key"));
            }
            t
        }
    };

    // outlake's own check of that file with this environment and these files.
    let mut max_buffered = None;
    if let Some(toml) = toml {
        let mut fig = Figment::from(Toml::string(&toml));
        for (k, v) in env.iter().filter(|(k, _)| k.starts_with("OUTLAKE_") && k.contains("__")) {
            let key = k["OUTLAKE_".len()..].to_ascii_lowercase().replace("__", ".");
            fig = fig.merge(Serialized::default(&key, v.parse::<figment::value::Value>().expect("infallible")));
        }
        match fig.extract::<RawConfig>() {
            Err(e) => problem(format!("the config does not load: {e}")),
            Ok(raw) => match outlake_config::validate(&raw, &Files(files.clone())) {
                Err(e) => problem(format!("outlake's config check fails: {e}")),
                Ok(cfg) => {
                    let secret = cfg.source.client_secret.as_ref().map(|s| s.expose().to_string());
                    let from_a_secret = secrets.iter().any(|doc| data_of(&doc.value).values().any(|v| Some(v) == secret.as_ref()));
                    if !from_a_secret {
                        problem("the client secret the worker reads is not a value of the Secret".into());
                    }
                    max_buffered = Some(cfg.limits.max_buffered_bytes);
                    // Graph's per-app limit is shared by the workers: each gets its part.
                    if let Some(per_worker) = cfg.limits.max_requests_per_sec {
                        let n = workers.unwrap_or(1);
                        if n * per_worker.get() as u64 > APP_REQUESTS_PER_SEC {
                            problem(format!(
                                "{n} workers × limits.max_requests_per_sec {per_worker} exceed Graph's {APP_REQUESTS_PER_SEC} requests/s per app and tenant"
                            ));
                        }
                    }
                }
            },
        }
    }

    // Resources from the memory budget.
    let request = c.pointer("/resources/requests/memory").and_then(quantity);
    let limit = c.pointer("/resources/limits/memory").and_then(quantity);
    match (request, limit, max_buffered) {
        (Some(r), Some(l), Some(b)) => {
            if r < b + MEMORY_BESIDES_BUFFER {
                problem(format!("memory request {r} bytes is below limits.max_buffered_mb ({b} bytes) + {MEMORY_BESIDES_BUFFER} bytes for the rest"));
            }
            if l < r {
                problem(format!("memory limit {l} is below the request {r}"));
            }
        }
        (None, _, _) | (_, None, _) => problem("no memory request and limit".into()),
        _ => {}
    }

    // Non-root, read-only.
    let sc = |p: &str| c.pointer(&format!("/securityContext{p}")).or_else(|| pod.pointer(&format!("/securityContext{p}")));
    if sc("/runAsNonRoot").and_then(Value::as_bool) != Some(true) {
        problem("runAsNonRoot is not true".into());
    }
    if sc("/runAsUser").and_then(Value::as_u64) == Some(0) {
        problem("runAsUser is 0 (root)".into());
    }
    if c.pointer("/securityContext/readOnlyRootFilesystem").and_then(Value::as_bool) != Some(true) {
        problem("readOnlyRootFilesystem is not true".into());
    }
    if c.pointer("/securityContext/allowPrivilegeEscalation").and_then(Value::as_bool) != Some(false) {
        problem("allowPrivilegeEscalation is not false".into());
    }

    // --shard (or OUTLAKE_SHARD), parsed as pod 0 of an Indexed Job would, or as a CronJob's pod
    // (no JOB_COMPLETION_INDEX) would.
    let spec = flag(&args, "--shard").or_else(|| env.get("OUTLAKE_SHARD").cloned()).unwrap_or_else(|| "all".into());
    let index = workers.map(|_| "0");
    match Shard::parse(&spec, index) {
        Ok(shard) => Some((image, shard, spec)),
        Err(e) => {
            out.push(format!("{what}: --shard {spec}: {e}"));
            None
        }
    }
}

/// A ConfigMap's `data` or a Secret's `stringData` and (decoded) `data`, by key.
fn data_of(v: &Value) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (k, x) in v.pointer("/data").and_then(Value::as_object).into_iter().flatten() {
        let s = x.as_str().unwrap_or_default();
        let decoded = if str_at(v, "/kind") == Some("Secret") {
            base64::engine::general_purpose::STANDARD.decode(s.trim()).ok().and_then(|b| String::from_utf8(b).ok()).unwrap_or_default()
        } else {
            s.to_string()
        };
        m.insert(k.clone(), decoded);
    }
    for (k, x) in v.pointer("/stringData").and_then(Value::as_object).into_iter().flatten() {
        m.insert(k.clone(), x.as_str().unwrap_or_default().to_string());
    }
    m
}

#[test]
fn the_manifests_give_every_worker_what_it_needs() {
    let d = read_deployment();
    let kinds: BTreeSet<&str> = d.docs.iter().filter_map(|doc| str_at(&doc.value, "/kind")).collect();
    assert_eq!(kinds, BTreeSet::from(["ConfigMap", "CronJob", "Job", "Kustomization", "Secret"]), "{:#?}", d.docs);
    let problems = problems(&d);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A broken copy of the deployment: `f` changes the document of `kind`.
fn broken(kind: &str, f: impl Fn(&mut Value)) -> Deployment {
    let mut d = read_deployment();
    let doc = d.docs.iter_mut().find(|doc| str_at(&doc.value, "/kind") == Some(kind)).unwrap();
    f(&mut doc.value);
    d
}

fn assert_names(d: &Deployment, expected: &str) {
    let p = problems(d);
    assert!(p.iter().any(|m| m.contains(expected)), "expected a problem naming {expected:?}, got:\n{}", p.join("\n"));
}

#[test]
fn the_checks_name_each_breakage() {
    let job_container = "/spec/template/spec/containers/0";
    let cron_container = "/spec/jobTemplate/spec/template/spec/containers/0";
    // Negative control: each breakage alone is found, with its cause named.
    assert_names(
        &broken("Job", |v| {
            v["spec"]["completions"] = json!(5);
            v["spec"]["parallelism"] = json!(5);
        }),
        "shards but completions is Some(5)",
    );
    assert_names(&broken("Job", |v| v["spec"]["parallelism"] = json!(2)), "must be the same N");
    assert_names(&broken("Job", |v| v["spec"]["completionMode"] = json!("NonIndexed")), "not Indexed");
    assert_names(
        &broken("Job", |v| {
            let args = v.pointer_mut(&format!("{job_container}/args")).unwrap().as_array_mut().unwrap();
            let i = args.iter().position(|a| a == "--shard").unwrap();
            args[i + 1] = json!("1/4");
        }),
        "different shards",
    );
    assert_names(
        &broken("CronJob", |v| v.pointer_mut(&format!("{cron_container}/args")).unwrap().as_array_mut().unwrap().extend([json!("--shard"), json!("index/4")])),
        "JOB_COMPLETION_INDEX",
    );
    assert_names(&broken("CronJob", |v| v["spec"]["concurrencyPolicy"] = json!("Allow")), "not Forbid");
    assert_names(
        &broken("Secret", |v| {
            let data = v["stringData"].as_object_mut().unwrap();
            let value = data.remove("client-secret").unwrap();
            data.insert("secret".into(), value);
        }),
        "no volume of the pod puts a file at /var/run/secrets/outlake/client-secret",
    );
    assert_names(
        &broken("ConfigMap", |v| {
            let toml = v["data"]["outlake.toml"].as_str().unwrap().replace("[limits]", "[limits]\nmax_inflight = 64");
            v["data"]["outlake.toml"] = json!(toml);
        }),
        "max_inflight",
    );
    assert_names(
        &broken("CronJob", |v| {
            let args = v.pointer_mut(&format!("{cron_container}/args")).unwrap().as_array_mut().unwrap();
            let i = args.iter().position(|a| a == "--config").unwrap();
            args[i + 1] = json!("/config/outlake.toml");
        }),
        "no ConfigMap is mounted at /config",
    );
    assert_names(
        &broken("Job", |v| v.pointer_mut(&format!("{job_container}/securityContext/readOnlyRootFilesystem")).map(|x| *x = json!(false)).unwrap()),
        "readOnlyRootFilesystem",
    );
    assert_names(
        &broken("Job", |v| {
            v["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] = json!(false);
            v.pointer_mut(&format!("{job_container}/securityContext/runAsNonRoot")).map(|x| *x = json!(false)).unwrap();
        }),
        "runAsNonRoot",
    );
    assert_names(
        &broken("Job", |v| v.pointer_mut(&format!("{job_container}/resources/requests/memory")).map(|x| *x = json!("128Mi")).unwrap()),
        "below limits.max_buffered_mb",
    );
    assert_names(
        &broken("Job", |v| {
            let env = v.pointer_mut(&format!("{job_container}/env")).unwrap().as_array_mut().unwrap();
            let rate = env.iter_mut().find(|e| e["name"] == "OUTLAKE_LIMITS__MAX_REQUESTS_PER_SEC").unwrap();
            rate["value"] = json!("5000");
        }),
        "4 workers × limits.max_requests_per_sec 5000 exceed",
    );
    assert_names(
        &broken("Job", |v| v.pointer_mut(&format!("{job_container}/image")).map(|x| *x = json!("registry.example.com/outlake:latest")).unwrap()),
        "different images",
    );
    let mut root = read_deployment();
    root.dockerfile = root.dockerfile.replace("USER 65532:65532", "USER root");
    assert_names(&root, "runs as root");
    let mut no_entry = read_deployment();
    no_entry.dockerfile = no_entry.dockerfile.replace("ENTRYPOINT [\"/usr/local/bin/outlake\"]", "ENTRYPOINT [\"/bin/sh\"]");
    assert_names(&no_entry, "does not run outlake");
}

#[test]
fn the_secret_as_an_environment_variable_works_too() {
    // The other documented way in: OUTLAKE_SOURCE__CLIENT_SECRET from the Secret, no file.
    let mut d = read_deployment();
    let cm = d.docs.iter_mut().find(|doc| str_at(&doc.value, "/kind") == Some("ConfigMap")).unwrap();
    let toml = cm.value["data"]["outlake.toml"].as_str().unwrap().lines().filter(|l| !l.starts_with("client_secret_file")).collect::<Vec<_>>().join("\n");
    cm.value["data"]["outlake.toml"] = json!(toml);
    let job = d.docs.iter_mut().find(|doc| str_at(&doc.value, "/kind") == Some("Job")).unwrap();
    let env = json!([{"name": "OUTLAKE_SOURCE__CLIENT_SECRET", "valueFrom": {"secretKeyRef": {"name": "outlake-client-secret", "key": "client-secret"}}}]);
    job.value.pointer_mut("/spec/template/spec/containers/0/env").unwrap().as_array_mut().unwrap().extend(env.as_array().unwrap().iter().cloned());
    let p = problems(&d);
    // The Job gets its secret from the variable; the CronJob, which still mounts it but no longer
    // points at it, has none.
    assert!(!p.iter().any(|m| m.contains("Job outlake-backfill")), "{}", p.join("\n"));
    assert!(p.iter().any(|m| m.contains("CronJob outlake") && m.contains("source.client_secret")), "{}", p.join("\n"));
}

// Traceability: what a deployed worker leaves in Graph's logs (here the simulator's request log)
// and in its own, so that a request leads to the worker and run that sent it.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_graph_request_names_its_run_and_has_its_own_id() {
    use super::support::{Env, assert_success};
    let env = Env::start(outlake_simulator::SimConfig { users: 3, messages_per_mailbox: 40, events_per_mailbox: 10, ..Default::default() }, "").await;
    let mut runs = Vec::new();
    for name in ["first.json", "second.json"] {
        let report = env.dir.path().join(name);
        let out = env.outlake_with_env(&["sync", "--progress", "never", "--log-format", "json", "--report", report.to_str().unwrap()], &[("RUST_LOG", "info")]);
        assert_success(&out);
        let run_id = serde_json::from_slice::<Value>(&std::fs::read(&report).unwrap()).unwrap()["run_id"].as_str().unwrap().to_string();
        // The run's first log line names it.
        let started: Vec<Value> = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["message"] == "run started")
            .collect();
        assert_eq!(started.len(), 1, "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(started[0]["run_id"], json!(run_id));
        runs.push(run_id);
    }
    assert_ne!(runs[0], runs[1]);

    let log = env.sim.request_log();
    assert_eq!(log.dropped, 0);
    assert!(log.entries.len() > 10, "{log:#?}");
    for r in &log.entries {
        let run = r.run_id.as_deref().unwrap_or_else(|| panic!("no run id in the User-Agent: {r:?}"));
        assert!(runs.iter().any(|x| x == run), "{r:?}");
        assert_eq!(r.user_agent.as_deref(), Some(format!("outlake/{VERSION} (run {run})").as_str()));
        let id = r.client_request_id.as_deref().unwrap_or_else(|| panic!("no client-request-id: {r:?}"));
        let hex: String = id.chars().filter(|c| *c != '-').collect();
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert!(groups == [8, 4, 4, 4, 12] && hex.chars().all(|c| c.is_ascii_hexdigit()) && hex.as_bytes()[12] == b'4', "not a UUID v4: {id}");
    }
    let ids: BTreeSet<&str> = log.entries.iter().filter_map(|r| r.client_request_id.as_deref()).collect();
    assert_eq!(ids.len(), log.entries.len(), "a client-request-id was sent twice");
    assert_eq!(log.run_ids(), runs.iter().cloned().collect::<BTreeSet<_>>());
    // One run after the other, each within Graph's per-mailbox concurrency.
    assert_eq!(log.overlapping_workers(), vec![]);
    assert!(log.max_in_flight().values().all(|&n| (1..=4).contains(&n)), "{:?}", log.max_in_flight());
    env.sim.shutdown().await;
}
