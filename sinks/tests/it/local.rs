//! Local-disk specifics: what lands where on disk, through `open_lake` with a `file://` URL.

use std::collections::BTreeMap;

use outlake_pipeline::lake::Lake;
use outlake_sinks::{WriterSettings, open_lake};

use crate::support::*;

#[tokio::test]
async fn file_url_lays_out_tables_staging_and_state_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let url = format!("file://{}", root.display());
    let lake = open_lake(&url, None, &BTreeMap::new(), WriterSettings::default()).await.unwrap();
    assert_eq!(lake.data_root().url, url);
    let p = messages("mbx-1", "inbox");
    let files = stage(&lake, &p, &[rows_batch("mbx-1", Some("inbox"), 1, 3)]).await;
    assert!(root.join(&files[0].staging_path).is_file());
    let cp = lake.commit(request(&p, None, files.clone())).await.unwrap();
    assert!(!root.join(&files[0].staging_path).exists());
    assert!(root.join(&files[0].table_path).is_file());
    let record = root.join(format!("_state/mbx-1/{}/00000000000000000001.json", p.slug()));
    let on_disk: serde_json::Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(on_disk["format_version"], outlake_sinks::format::FORMAT_VERSION);
    assert_eq!(on_disk["seq"], 1);
    assert_eq!(on_disk["files"][0]["table_path"], files[0].table_path.as_str());
    assert_eq!(cp.files, files);
}

#[tokio::test]
async fn separate_checkpoint_url_holds_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let data = format!("file://{}", dir.path().join("data").display());
    let state = format!("file://{}", dir.path().join("state").display());
    let lake = open_lake(&data, Some(&state), &BTreeMap::new(), WriterSettings::default()).await.unwrap();
    let p = messages("mbx-1", "inbox");
    stage_commit(&lake, &p, None, &[rows_batch("mbx-1", Some("inbox"), 1, 3)]).await;
    assert!(dir.path().join(format!("state/mbx-1/{}/00000000000000000001.json", p.slug())).is_file());
    assert!(!dir.path().join("data/_state").exists());
    let reopened = open_lake(&data, Some(&state), &BTreeMap::new(), WriterSettings::default()).await.unwrap();
    assert_eq!(reopened.load(&p).await.unwrap().unwrap().seq, 1);
}
