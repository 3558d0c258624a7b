//! A full end-to-end sync into Azurite and into the S3-compatible server, read back from the
//! object store with the parquet crate and compared with the simulator's truth. The test
//! command (`scripts/test.sh`) starts both emulators; under CI a missing emulator is a failure.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt};
use outlake_simulator::SimConfig;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::support::{Env, Row, assert_success, batches_to_rows, state_of_rows};
use super::truth::assert_state_equals_truth;

fn emulator(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var_os("CI").is_some() => panic!("{var} is not set: CI must start the emulators (scripts/test.sh does)"),
        _ => {
            eprintln!("skipping: {var} is not set (run through scripts/test.sh)");
            None
        }
    }
}

async fn rows_of(store: &Arc<dyn ObjectStore>, prefix: &str, table: &str) -> Vec<Row> {
    let root = ObjPath::from(format!("{prefix}/{table}"));
    let metas: Vec<_> = store.list(Some(&root)).try_collect().await.unwrap();
    let mut batches = Vec::new();
    for m in metas.into_iter().filter(|m| m.location.as_ref().ends_with(".parquet")) {
        let bytes = store.get(&m.location).await.unwrap().bytes().await.unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().build().unwrap();
        batches.extend(reader.map(|b| b.unwrap()));
    }
    batches_to_rows(batches)
}

async fn sync_into(url: &str, options: &[(&str, &str)], store: Arc<dyn ObjectStore>, prefix: &str) {
    let mut opts = String::from("[sink.options]\n");
    for (k, v) in options {
        opts.push_str(&format!("{k} = \"{v}\"\n"));
    }
    let env = Env::start(SimConfig { users: 3, messages_per_mailbox: 120, events_per_mailbox: 15, seed: 77, ..SimConfig::default() }, "").await;
    let text = std::fs::read_to_string(&env.config).unwrap();
    let text = text.replace(&format!("url = \"file://{}\"", env.lake().display()), &format!("url = \"{url}\"\n{opts}"));
    std::fs::write(&env.config, text).unwrap();

    assert_success(&env.sync());
    env.sim.mutate(env.sim.random_changes(2, 3)).unwrap();
    assert_success(&env.sync());

    let mut state: BTreeMap<String, BTreeMap<String, Row>> = BTreeMap::new();
    for t in super::truth::ALL_TABLES {
        state.insert(t.to_string(), state_of_rows(t, rows_of(&store, prefix, t).await));
    }
    assert!(state["messages"].len() > 100, "read back {} messages", state["messages"].len());
    assert_state_equals_truth(|t| state[t].clone(), &env.sim.truth());
    // Nothing is left in staging after clean runs.
    let staged: Vec<_> = store.list(Some(&ObjPath::from(format!("{prefix}/_staging")))).try_collect().await.unwrap();
    assert!(staged.is_empty(), "staged files left behind: {staged:?}");
    env.sim.shutdown().await;
}

fn unique(name: &str) -> String {
    format!("e2e-{name}-{}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_into_azurite_equals_truth() {
    let Some(_) = emulator("OUTLAKE_TEST_AZURITE") else { return };
    let prefix = unique("az");
    let store: Arc<dyn ObjectStore> = Arc::new(
        object_store::azure::MicrosoftAzureBuilder::new().with_use_emulator(true).with_allow_http(true).with_container_name("outlake-test").build().unwrap(),
    );
    sync_into(&format!("az://outlake-test/{prefix}"), &[("azure_storage_use_emulator", "true")], store, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_into_s3_equals_truth() {
    let Some(endpoint) = emulator("OUTLAKE_TEST_S3_ENDPOINT") else { return };
    let prefix = unique("s3");
    let store: Arc<dyn ObjectStore> = Arc::new(
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&endpoint)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_bucket_name("outlake-test")
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .unwrap(),
    );
    sync_into(
        &format!("s3://outlake-test/{prefix}"),
        &[("aws_endpoint", &endpoint), ("aws_allow_http", "true"), ("aws_region", "us-east-1"), ("aws_virtual_hosted_style_request", "false")],
        store,
        &prefix,
    )
    .await;
}
