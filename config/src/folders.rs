//! The syntax of `source.include_folders` / `source.exclude_folders` entries.
//!
//! An entry is a folder path: segments separated by `/`, compared with display names without
//! regard to case (Outlook folder names are case-insensitive among siblings). The first segment
//! may be a Graph well-known folder name (`inbox`, `sentitems`, …), which names that folder in
//! any mailbox language; otherwise it names a top-level folder by display name. A segment may be
//! a glob (`*`, `?`, `[…]`). An entry names a folder **and everything below it**.
//!
//! Examples: `inbox`, `inbox/Projects`, `Archive/20*`, `sentitems`.

use std::fmt;

/// Folder names Graph resolves in `mailFolders/{name}`, independent of the mailbox language.
pub const WELL_KNOWN_FOLDERS: &[&str] = &[
    "archive",
    "clutter",
    "conflicts",
    "conversationhistory",
    "deleteditems",
    "drafts",
    "inbox",
    "junkemail",
    "localfailures",
    "outbox",
    "recoverableitemsdeletions",
    "scheduled",
    "searchfolders",
    "sentitems",
    "serverfailures",
    "syncissues",
];

/// One path segment: a display name, or a glob over display names.
#[derive(Clone)]
pub enum Segment {
    /// Lower-cased display name.
    Name(String),
    Glob(glob::Pattern),
}

impl Segment {
    pub fn matches(&self, display_name: &str) -> bool {
        match self {
            Segment::Name(n) => display_name.to_lowercase() == *n,
            Segment::Glob(g) => {
                g.matches_with(display_name, glob::MatchOptions { case_sensitive: false, require_literal_separator: false, require_literal_leading_dot: false })
            }
        }
    }
}

/// A parsed `include_folders` / `exclude_folders` entry.
#[derive(Clone)]
pub struct FolderPattern {
    /// The entry as written (for messages).
    pub raw: String,
    /// Set when the first segment is a well-known folder name (lower case).
    pub well_known: Option<String>,
    pub segments: Vec<Segment>,
}

impl fmt::Debug for FolderPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FolderPattern({:?})", self.raw)
    }
}

impl fmt::Display for FolderPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl FolderPattern {
    /// Parse one entry; the error says what is wrong with it.
    pub fn parse(raw: &str) -> Result<FolderPattern, String> {
        let trimmed = raw.trim().trim_matches('/');
        if trimmed.is_empty() {
            return Err(format!("{raw:?} is empty; write a folder path such as \"inbox/Projects\""));
        }
        let mut segments = Vec::new();
        for part in trimmed.split('/') {
            let part = part.trim();
            if part.is_empty() {
                return Err(format!("{raw:?} has an empty path segment (\"//\")"));
            }
            if crate::is_glob(part) {
                let g = glob::Pattern::new(part).map_err(|e| format!("{raw:?}: segment {part:?} is not a glob: {e}"))?;
                segments.push(Segment::Glob(g));
            } else {
                segments.push(Segment::Name(part.to_lowercase()));
            }
        }
        let well_known = match &segments[0] {
            Segment::Name(n) if WELL_KNOWN_FOLDERS.contains(&n.as_str()) => Some(n.clone()),
            _ => None,
        };
        Ok(FolderPattern { raw: raw.to_string(), well_known, segments })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths_globs_and_well_known_names() {
        let p = FolderPattern::parse("/Inbox/Projects/").unwrap();
        assert_eq!(p.well_known.as_deref(), Some("inbox"));
        assert_eq!(p.segments.len(), 2);
        assert!(p.segments[1].matches("PROJECTS"));
        assert!(!p.segments[1].matches("Projects 2"));

        let g = FolderPattern::parse("Archive/20*").unwrap();
        assert_eq!(g.well_known.as_deref(), Some("archive"));
        assert!(g.segments[1].matches("2019"));
        assert!(!g.segments[1].matches("19"));

        let plain = FolderPattern::parse("Team mail").unwrap();
        assert_eq!(plain.well_known, None);
        assert!(plain.segments[0].matches("team MAIL"));
    }

    #[test]
    fn rejects_empty_entries_and_bad_globs() {
        assert!(FolderPattern::parse(" ").unwrap_err().contains("empty"));
        assert!(FolderPattern::parse("inbox//x").unwrap_err().contains("empty path segment"));
        assert!(FolderPattern::parse("inbox/[x").unwrap_err().contains("not a glob"));
    }
}
