//! What a run covers inside a mailbox: which folders get a messages partition
//! (`include_folders` / `exclude_folders`) and which messages are kept (`received_after`).
//!
//! Contract:
//! - Folder patterns ([`FolderPattern`]) are matched against the folder tree the `mail_folders`
//!   stream committed. A pattern names a folder and its whole subtree. Its first segment matches
//!   the well-known folder of that name (resolved by the source) or a top-level folder by display
//!   name; each further segment matches a child by display name (case-insensitive, globs).
//! - A folder is selected when `include` is empty or a pattern of `include` names it, and no
//!   pattern of `exclude` names it.
//! - `received_after` drops upserts whose `received_date_time` is earlier (or missing); delete
//!   rows always pass. A partition remembers the [`RoundScope`] it was synced
//!   with; when it changes, the partition re-baselines so the output matches the new scope.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use chrono::{DateTime, Utc};
use outlake_config::FolderPattern;

use crate::model::{KeyState, Mailbox, RoundScope, columns};
use crate::source::{CalendarInfo, Source, SourceError};

/// A folder as the `mail_folders` table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderNode {
    pub id: String,
    pub parent_id: Option<String>,
    pub display_name: String,
}

impl FolderNode {
    /// The present folders of a `mail_folders` partition's committed state.
    pub fn from_keys(keys: &HashMap<String, KeyState>) -> Vec<FolderNode> {
        let mut out: Vec<FolderNode> = keys
            .iter()
            .filter(|(_, k)| !k.deleted)
            .map(|(id, k)| FolderNode { id: id.clone(), parent_id: k.parent_folder_id.clone(), display_name: k.display_name.clone().unwrap_or_default() })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }
}

/// Folder include/exclude patterns.
#[derive(Debug, Clone, Default)]
pub struct FolderScope {
    pub include: Vec<FolderPattern>,
    pub exclude: Vec<FolderPattern>,
}

/// The outcome of applying a [`FolderScope`] to one mailbox's folders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderSelection {
    /// Folder ids whose messages are synced, sorted.
    pub selected: Vec<String>,
    /// Folder ids left out, sorted.
    pub excluded: Vec<String>,
    /// Patterns (as written) that named no folder of this mailbox: likely typos.
    pub unmatched: Vec<String>,
}

impl FolderScope {
    /// True when every folder is selected without looking at the tree.
    pub fn is_everything(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// Well-known folder names the patterns start with (to be resolved to ids by the source).
    pub fn well_known_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.include.iter().chain(&self.exclude).filter_map(|p| p.well_known.clone()).collect();
        names.sort();
        names.dedup();
        names
    }

    /// The ids of the well-known folders the patterns use, in one mailbox (names it lacks are
    /// left out): one source request per name.
    pub async fn resolve_well_known(&self, source: &dyn Source, mailbox: &Mailbox) -> Result<HashMap<String, String>, SourceError> {
        let mut ids = HashMap::new();
        for name in self.well_known_names() {
            if let Some(id) = source.well_known_folder(mailbox, &name).await? {
                ids.insert(name, id);
            }
        }
        Ok(ids)
    }

    /// Select folders. `well_known` maps a well-known name to the folder id it resolved to in
    /// this mailbox (names the mailbox lacks are absent).
    pub fn select(&self, folders: &[FolderNode], well_known: &HashMap<String, String>) -> FolderSelection {
        let by_id: HashMap<&str, &FolderNode> = folders.iter().map(|f| (f.id.as_str(), f)).collect();
        let mut include_used = vec![false; self.include.len()];
        let mut exclude_used = vec![false; self.exclude.len()];
        let mut out = FolderSelection::default();
        for f in folders {
            let chain = chain_of(f, &by_id);
            let included = self.include.is_empty() | mark_naming(&self.include, &chain, well_known, &mut include_used);
            let excluded = mark_naming(&self.exclude, &chain, well_known, &mut exclude_used);
            if included && !excluded {
                out.selected.push(f.id.clone());
            } else {
                out.excluded.push(f.id.clone());
            }
        }
        let patterns = self.include.iter().zip(&include_used).chain(self.exclude.iter().zip(&exclude_used));
        out.unmatched = patterns.filter(|(_, used)| !**used).map(|(p, _)| p.raw.clone()).collect();
        out.selected.sort();
        out.excluded.sort();
        out
    }
}

/// Does any of `patterns` name the folder at the end of `chain`? Marks every pattern that does.
fn mark_naming(patterns: &[FolderPattern], chain: &[&FolderNode], well_known: &HashMap<String, String>, used: &mut [bool]) -> bool {
    let mut hit = false;
    for (p, used) in patterns.iter().zip(used.iter_mut()) {
        if names(p, chain, well_known) {
            *used = true;
            hit = true;
        }
    }
    hit
}

/// The folder's ancestors and itself, top-level folder first. A cycle or a missing parent ends
/// the chain (the folder then counts as top-level from there).
fn chain_of<'a>(f: &'a FolderNode, by_id: &HashMap<&str, &'a FolderNode>) -> Vec<&'a FolderNode> {
    let mut chain = vec![f];
    let mut seen: HashSet<&str> = HashSet::from([f.id.as_str()]);
    let mut cur = f;
    while let Some(parent) = cur.parent_id.as_deref().and_then(|p| by_id.get(p)) {
        if !seen.insert(parent.id.as_str()) {
            break;
        }
        chain.push(parent);
        cur = parent;
    }
    chain.reverse();
    chain
}

/// Does `p` name the last folder of `chain` or one of its ancestors?
fn names(p: &FolderPattern, chain: &[&FolderNode], well_known: &HashMap<String, String>) -> bool {
    // Segments after the first match the folders right below `start`, one level each.
    let rest_matches = |start: usize| -> bool {
        let rest = &p.segments[1..];
        chain.len() > start + rest.len() && rest.iter().enumerate().all(|(i, s)| s.matches(&chain[start + 1 + i].display_name))
    };
    // The first segment as a well-known folder anywhere up the chain.
    let well_known_at = p.well_known.as_ref().and_then(|n| well_known.get(n)).and_then(|id| chain.iter().position(|f| &f.id == id));
    if well_known_at.is_some_and(rest_matches) {
        return true;
    }
    // The first segment as a top-level display name.
    p.segments[0].matches(&chain[0].display_name) && rest_matches(0)
}

/// Which calendars of a mailbox get an events partition (`source.calendars`).
#[derive(Debug, Clone, Default)]
pub enum CalendarFilter {
    /// The mailbox's own calendars (the default).
    #[default]
    Owned,
    /// Every calendar the listing shows, those shared with the mailbox included.
    All,
    /// Calendars whose lower-cased name one of the patterns matches (lower-case globs, as the
    /// config stores them), whoever owns them.
    Named(Vec<glob::Pattern>),
}

impl CalendarFilter {
    /// The ids of the calendars this filter selects, in listing order.
    ///
    /// A calendar is the mailbox's own when its owner's address is the default calendar's owner
    /// address or the mailbox's UPN (case-insensitive); a calendar without an owner address
    /// counts as owned (Graph gives every calendar an owner; the rule only keeps a damaged
    /// listing from dropping data).
    pub fn select(&self, mailbox: &Mailbox, calendars: &[CalendarInfo]) -> Vec<String> {
        let own: Vec<&str> = calendars.iter().filter(|c| c.is_default).filter_map(|c| c.owner_address.as_deref()).chain(mailbox.upn.as_deref()).collect();
        let owned = |c: &CalendarInfo| c.owner_address.as_deref().is_none_or(|a| own.iter().any(|o| o.eq_ignore_ascii_case(a)));
        let named = |c: &CalendarInfo, patterns: &[glob::Pattern]| {
            let name = c.name.to_lowercase();
            patterns.iter().any(|p| p.matches(&name))
        };
        calendars
            .iter()
            .filter(|c| match self {
                CalendarFilter::Owned => owned(c),
                CalendarFilter::All => true,
                CalendarFilter::Named(patterns) => named(c, patterns),
            })
            .map(|c| c.id.clone())
            .collect()
    }
}

/// Which messages are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageScope {
    pub received_after: Option<DateTime<Utc>>,
}

impl MessageScope {
    /// The part of a round's [`RoundScope`] this setting decides.
    pub fn round_scope(&self) -> RoundScope {
        RoundScope { received_after: self.received_after, ..RoundScope::default() }
    }

    /// A mask keeping delete rows and upserts received at or after `received_after`; `None`
    /// when the batch keeps every row.
    pub fn mask(&self, batch: &RecordBatch) -> Option<BooleanArray> {
        let cutoff = self.received_after?.timestamp_micros();
        let ops = batch.column_by_name(columns::OP)?.as_string_opt::<i32>()?;
        let received = batch.column_by_name(columns::RECEIVED_DATE_TIME)?;
        let received = arrow::compute::cast(received, &arrow::datatypes::DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None)).ok()?;
        let received = received.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        let mask: BooleanArray = (0..batch.num_rows())
            .map(|i| {
                let delete = !ops.is_null(i) && ops.value(i) == columns::OP_DELETE;
                Some(delete || (received.is_valid(i) && received.value(i) >= cutoff))
            })
            .collect();
        (mask.true_count() < batch.num_rows()).then_some(mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, parent: Option<&str>, name: &str) -> FolderNode {
        FolderNode { id: id.into(), parent_id: parent.map(Into::into), display_name: name.into() }
    }

    fn tree() -> Vec<FolderNode> {
        vec![
            node("in", Some("root"), "Posteingang"),
            node("proj", Some("in"), "Projects"),
            node("p24", Some("proj"), "2024"),
            node("news", Some("in"), "Newsletters"),
            node("sent", Some("root"), "Sent Items"),
            node("junk", Some("root"), "Junk Email"),
            node("arch", Some("root"), "Archive"),
            node("a19", Some("arch"), "2019"),
            node("a20", Some("arch"), "2020"),
        ]
    }

    fn wk() -> HashMap<String, String> {
        HashMap::from([("inbox".into(), "in".into()), ("sentitems".into(), "sent".into()), ("junkemail".into(), "junk".into())])
    }

    fn scope(include: &[&str], exclude: &[&str]) -> FolderScope {
        let p = |v: &[&str]| v.iter().map(|s| FolderPattern::parse(s).unwrap()).collect();
        FolderScope { include: p(include), exclude: p(exclude) }
    }

    #[test]
    fn well_known_names_select_subtrees_in_any_language() {
        let s = scope(&["inbox"], &[]);
        assert_eq!(s.select(&tree(), &wk()).selected, vec!["in", "news", "p24", "proj"]);
        let s = scope(&["inbox/projects"], &[]);
        assert_eq!(s.select(&tree(), &wk()).selected, vec!["p24", "proj"]);
    }

    #[test]
    fn display_name_paths_and_globs() {
        let s = scope(&["Archive/20*", "sent items"], &[]);
        let sel = s.select(&tree(), &wk());
        assert_eq!(sel.selected, vec!["a19", "a20", "sent"]);
        assert!(sel.unmatched.is_empty());
        let s = scope(&["Archive/2019"], &[]);
        assert_eq!(s.select(&tree(), &wk()).selected, vec!["a19"]);
    }

    #[test]
    fn exclude_wins_and_empty_include_means_all() {
        let s = scope(&[], &["junkemail", "inbox/Newsletters"]);
        assert_eq!(s.select(&tree(), &wk()).selected, vec!["a19", "a20", "arch", "in", "p24", "proj", "sent"]);
        let s = scope(&["inbox"], &["inbox/projects/2024"]);
        let sel = s.select(&tree(), &wk());
        assert_eq!(sel.selected, vec!["in", "news", "proj"]);
        assert!(sel.excluded.contains(&"p24".to_string()));
    }

    #[test]
    fn unmatched_patterns_are_reported() {
        let s = scope(&["Inbx", "inbox"], &["drafts"]);
        let sel = s.select(&tree(), &wk());
        assert_eq!(sel.unmatched, vec!["Inbx", "drafts"]);
        assert_eq!(s.well_known_names(), vec!["drafts", "inbox"]);
    }

    fn calendar(id: &str, name: &str, owner: Option<&str>, default: bool) -> CalendarInfo {
        CalendarInfo { id: id.into(), name: name.into(), owner_address: owner.map(Into::into), is_default: default, change_key: None }
    }

    #[test]
    fn calendar_filters_select_owned_all_and_named() {
        let mb = Mailbox { id: "u1".into(), upn: Some("Megan@contoso.com".into()), ..Mailbox::default() };
        let listing = vec![
            calendar("c1", "Calendar", Some("megan@contoso.com"), true),
            calendar("c2", "Team", Some("MEGAN@contoso.com"), false),
            calendar("c3", "Alex's calendar", Some("alex@contoso.com"), false),
            calendar("c4", "Holidays", None, false),
        ];
        assert_eq!(CalendarFilter::Owned.select(&mb, &listing), vec!["c1", "c2", "c4"]);
        assert_eq!(CalendarFilter::All.select(&mb, &listing), vec!["c1", "c2", "c3", "c4"]);
        let named = CalendarFilter::Named(vec![glob::Pattern::new("team").unwrap(), glob::Pattern::new("alex*").unwrap()]);
        assert_eq!(named.select(&mb, &listing), vec!["c2", "c3"]);
        // Without a UPN, the default calendar's owner is the mailbox.
        let by_id = Mailbox { upn: None, ..mb };
        assert_eq!(CalendarFilter::Owned.select(&by_id, &listing), vec!["c1", "c2", "c4"]);
    }

    #[test]
    fn parent_cycles_do_not_hang() {
        let t = vec![node("a", Some("b"), "A"), node("b", Some("a"), "B")];
        let s = scope(&["A"], &[]);
        let sel = s.select(&t, &HashMap::new());
        assert_eq!(sel.selected.len() + sel.excluded.len(), 2);
    }
}
