//! What `outlake estimate` reads from Graph: a mailbox's folder tree with each folder's message
//! count, from one `mailFolders/delta` round (its folders carry `totalItemCount`), and its
//! calendars listing. No messages or events are read.
//!
//! Contract: the round is followed to its end (links checked like a sync's); `@removed` folders
//! drop out; a folder without a readable `totalItemCount` counts 0; a round longer than
//! [`MAX_FOLDER_PAGES`] pages fails. [`GraphSource::calendar_list`] is the sync's calendars
//! listing (same requests, same errors) without its rows.

use std::collections::BTreeMap;

use outlake_pipeline::model::Mailbox;
use outlake_pipeline::scope::FolderNode;
use outlake_pipeline::seq::SeqGen;
use outlake_pipeline::source::{CalendarInfo, SourceError, SourceErrorKind};
use serde_json::Value;

use super::retry::RequestKind;
use super::source::GraphSource;
use super::urls;

/// Folder delta pages after which the round is taken not to end.
pub const MAX_FOLDER_PAGES: u64 = 100_000;

/// A mailbox's folders with their message counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderCounts {
    /// Each folder, as the folder scope sees it, with its `totalItemCount`.
    pub folders: Vec<(FolderNode, u64)>,
    /// `mailFolders/delta` pages read.
    pub pages: u64,
}

impl GraphSource {
    /// A mailbox's calendars, in listing order (module contract).
    pub async fn calendar_list(&self, mailbox: &Mailbox) -> Result<Vec<CalendarInfo>, SourceError> {
        Ok(self.list_calendars(mailbox, &SeqGen::new(0), "estimate").await?.calendars)
    }

    /// The folder tree of `mailbox` with message counts (module contract).
    pub async fn folder_counts(&self, mailbox: &Mailbox) -> Result<FolderCounts, SourceError> {
        let g = &self.opts.graph_url;
        let mut url = urls::folder_delta(g, mailbox);
        let mut folders: BTreeMap<String, (FolderNode, u64)> = BTreeMap::new();
        let mut pages = 0u64;
        loop {
            let page = self.get_json(url, RequestKind::FolderDelta, &mailbox.id).await?;
            pages += 1;
            for f in page.get("value").and_then(Value::as_array).into_iter().flatten() {
                let Some(id) = f.get("id").and_then(Value::as_str) else { continue };
                if f.get("@removed").is_some() {
                    folders.remove(id);
                    continue;
                }
                let node = FolderNode {
                    id: id.to_string(),
                    parent_id: f.get("parentFolderId").and_then(Value::as_str).map(str::to_string),
                    display_name: f.get("displayName").and_then(Value::as_str).unwrap_or_default().to_string(),
                };
                folders.insert(id.to_string(), (node, f.get("totalItemCount").and_then(Value::as_u64).unwrap_or(0)));
            }
            match page.get("@odata.nextLink").and_then(Value::as_str) {
                Some(next) => url = urls::validate_link(next, g)?,
                None => break,
            }
            if pages > MAX_FOLDER_PAGES {
                return Err(SourceError::new(SourceErrorKind::Partition, None, "the folder delta did not end"));
            }
        }
        Ok(FolderCounts { folders: folders.into_values().collect(), pages })
    }
}
