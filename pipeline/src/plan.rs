//! The planner: what each partition does this run, decided without I/O.
//!
//! Input: the committed checkpoints, where each partition's container (a folder for
//! `messages`, a calendar for `events`) stands against the folder tree or the calendar listing
//! and the scope ([`Membership`]), and the configured [`RoundScope`] (`received_after` for
//! messages, the calendar window for events: a window that rolled is a changed scope). Output: one
//! [`Action`] per partition. The runner carries the actions out; it makes no decision of its
//! own about a partition's lifecycle. Every row of the table below has a test.
//!
//! | committed state                      | membership | scope     | action                                  |
//! |--------------------------------------|------------|-----------|-----------------------------------------|
//! | none                                 | selected   | –         | baseline (owes no deletes)              |
//! | none                                 | excluded / gone | –    | nothing (never synced)                  |
//! | retired                              | any        | –         | nothing, ever                           |
//! | any but retired                      | gone       | –         | retire: delete rows, state retired      |
//! | parked                               | excluded   | –         | nothing (stays parked)                  |
//! | syncing / needs re-baseline          | excluded   | –         | park: delete rows, state parked         |
//! | parked                               | selected   | –         | re-baseline (back in scope)             |
//! | needs re-baseline                    | selected   | –         | re-baseline (410 or `outlake reset`)    |
//! | syncing                              | selected   | changed   | re-baseline (scope changed)             |
//! | syncing, nextLink, re-baseline round with a seen log | selected | same | resume the round at the nextLink |
//! | syncing, nextLink, re-baseline round without one (format 1) | selected | same | re-baseline again (interrupted) |
//! | syncing, nextLink, other round       | selected   | same      | resume the round at the nextLink        |
//! | syncing, deltaLink                   | selected   | same      | incremental round from the deltaLink    |
//! | syncing, no cursor                   | selected   | –         | re-baseline (damaged record)            |
//!
//! A re-baseline *owes deletes*: at its end every key the output holds for the partition that
//! the round did not return gets a delete row. An interrupted re-baseline resumes: the keys it
//! returned without rewriting are in its seen log ([`SeenLog`](crate::model::SeenLog)); a round
//! recorded by an earlier release has no log and starts again.

use std::collections::{BTreeMap, HashSet};

#[cfg(test)]
use crate::model::SeenLog;
use crate::model::{Checkpoint, Cursor, PartitionKey, PartitionState, RoundInfo, RoundScope, Stream};

/// Where a partition's folder stands this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// The folder exists and is in the folder scope (always, for `mail_folders` and `events`).
    Selected,
    /// The folder exists but `include_folders` / `exclude_folders` leave it out.
    Excluded,
    /// The folder is no longer in the folder tree.
    Gone,
}

/// Why a round starts without a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebaselineReason {
    /// The sync state expired (410) or `outlake reset` cleared the cursor.
    Requested,
    /// The configured scope differs from the one the partition was synced under.
    ScopeChanged,
    /// The folder was parked and is back in the folder scope.
    BackInScope,
    /// A re-baseline recorded by an earlier release was interrupted mid-round (it has no seen log).
    Interrupted,
    /// A commit record in state `syncing` without a cursor (written by hand or damaged).
    NoCursor,
}

impl RebaselineReason {
    /// The reason in words, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RebaselineReason::Requested => "sync state expired or reset",
            RebaselineReason::ScopeChanged => "scope or calendar window changed",
            RebaselineReason::BackInScope => "back in scope",
            RebaselineReason::Interrupted => "interrupted rebaseline of an earlier release",
            RebaselineReason::NoCursor => "commit record without a cursor",
        }
    }
}

/// What one partition does this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing: retired, still parked, or never synced and not wanted.
    Nothing,
    /// The partition's first round.
    Baseline,
    /// A round without a token that owes deletes.
    Rebaseline(RebaselineReason),
    /// Continue the committed round at its nextLink.
    Resume { link: Cursor, round: RoundInfo },
    /// A new incremental round from the deltaLink.
    Incremental { link: Cursor },
    /// Delete the partition's rows and park it.
    Park,
    /// Delete the partition's rows and retire it for good.
    Retire,
}

/// The action for one partition. Pure: the same inputs always give the same action.
pub fn plan_partition(previous: Option<&Checkpoint>, membership: Membership, scope: &RoundScope) -> Action {
    let Some(cp) = previous else {
        return match membership {
            Membership::Selected => Action::Baseline,
            Membership::Excluded | Membership::Gone => Action::Nothing,
        };
    };
    match (cp.state, membership) {
        (PartitionState::Retired, _) => Action::Nothing,
        (_, Membership::Gone) => Action::Retire,
        (PartitionState::Parked, Membership::Excluded) => Action::Nothing,
        (_, Membership::Excluded) => Action::Park,
        (PartitionState::Parked, Membership::Selected) => Action::Rebaseline(RebaselineReason::BackInScope),
        (PartitionState::NeedsRebaseline, Membership::Selected) => Action::Rebaseline(RebaselineReason::Requested),
        (PartitionState::Syncing, Membership::Selected) => match &cp.cursor {
            None => Action::Rebaseline(RebaselineReason::NoCursor),
            Some(_) if &cp.round.scope != scope => Action::Rebaseline(RebaselineReason::ScopeChanged),
            Some(Cursor::Next(_)) if cp.round.kind.owes_deletes() && cp.round.seen.is_none() => Action::Rebaseline(RebaselineReason::Interrupted),
            Some(link @ Cursor::Next(_)) => Action::Resume { link: link.clone(), round: cp.round.clone() },
            Some(link @ Cursor::Delta(_)) => Action::Incremental { link: link.clone() },
        },
    }
}

/// Where every partition of a per-container stream of a mailbox stands — `messages` (one
/// partition per folder) or `events` (one per calendar): the containers `selected` by the scope
/// (from those `present` in the folder tree or the calendar listing), and every container that
/// has a committed partition of `stream`. Selected containers come first, in their order; then
/// the others, sorted. A committed partition without a container (the single events partition
/// of lakes written before events were partitioned per calendar) is `Gone`: it is retired, its
/// rows deleted, and the per-calendar partitions take over.
pub fn memberships(stream: Stream, existing: &[Checkpoint], present: &HashSet<String>, selected: &[String]) -> Vec<(Option<String>, Membership)> {
    let wanted: HashSet<&str> = selected.iter().map(String::as_str).collect();
    let mut out: Vec<(Option<String>, Membership)> = selected.iter().map(|f| (Some(f.clone()), Membership::Selected)).collect();
    let others: BTreeMap<Option<&str>, Membership> = existing
        .iter()
        .filter(|c| c.partition.stream == stream)
        .map(|c| c.partition.folder_id.as_deref())
        .filter(|f| !f.is_some_and(|f| wanted.contains(f)))
        .map(|f| (f, if f.is_some_and(|f| present.contains(f)) { Membership::Excluded } else { Membership::Gone }))
        .collect();
    out.extend(others.into_iter().map(|(f, m)| (f.map(str::to_string), m)));
    out
}

/// One partition's plan: where its container stands, and what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPartition {
    pub partition: PartitionKey,
    pub membership: Membership,
    pub action: Action,
}

/// The plan of a mailbox's partitions of `stream` (`messages` or `events`), for every container
/// that has something to do, in [`memberships`] order. The runner re-plans each one with its
/// freshly loaded checkpoint ([`plan_partition`]) and the membership decided here.
pub fn plan_children(
    mailbox_id: &str,
    stream: Stream,
    existing: &[Checkpoint],
    present: &HashSet<String>,
    selected: &[String],
    scope: &RoundScope,
) -> Vec<PlannedPartition> {
    memberships(stream, existing, present, selected)
        .into_iter()
        .filter_map(|(container, membership)| {
            let part = PartitionKey::new(mailbox_id, stream, container);
            let previous = existing.iter().find(|c| c.partition == part);
            match plan_partition(previous, membership, scope) {
                Action::Nothing => None,
                action => Some(PlannedPartition { partition: part, membership, action }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RoundKind, StagedFile};

    fn cp(state: PartitionState, cursor: Option<Cursor>, kind: RoundKind, scope: RoundScope) -> Checkpoint {
        cp_for("f", state, cursor, kind, scope)
    }

    fn cp_for(folder: &str, state: PartitionState, cursor: Option<Cursor>, kind: RoundKind, scope: RoundScope) -> Checkpoint {
        Checkpoint {
            partition: PartitionKey::new("m", Stream::Messages, Some(folder.to_string())),
            seq: 3,
            state,
            cursor,
            round: RoundInfo { kind, started_seq: 10, pages: 2, scope, seen: SeenLog::for_round(kind) },
            high_water_seq: 20,
            files: Vec::<StagedFile>::new(),
            run_id: "r".into(),
            committed_at: chrono::DateTime::UNIX_EPOCH,
            total_rows: 5,
            rebaselines: 0,
        }
    }

    /// A round recorded by format 1, which had no seen log.
    fn without_seen_log(mut c: Checkpoint) -> Checkpoint {
        c.round.seen = None;
        c
    }

    fn next() -> Option<Cursor> {
        Some(Cursor::Next("https://g/next".into()))
    }
    fn delta() -> Option<Cursor> {
        Some(Cursor::Delta("https://g/delta".into()))
    }
    fn after(day: u32) -> RoundScope {
        RoundScope { received_after: Some(chrono::DateTime::from_timestamp(i64::from(day) * 86_400, 0).unwrap()), ..RoundScope::default() }
    }

    use Membership::{Excluded, Gone, Selected};
    use PartitionState::{NeedsRebaseline, Parked, Retired, Syncing};
    use RebaselineReason as R;
    use RoundKind::{Baseline, Incremental, Rebaseline};

    /// Every row of the module's table, in its order.
    #[test]
    fn the_planning_table() {
        let none = RoundScope::default();
        let resume_round = RoundInfo { kind: Baseline, started_seq: 10, pages: 2, scope: none.clone(), seen: None };
        #[rustfmt::skip]
        let rows: Vec<(Option<Checkpoint>, Membership, RoundScope, Action)> = vec![
            (None, Selected, none.clone(), Action::Baseline),
            (None, Excluded, none.clone(), Action::Nothing),
            (None, Gone, none.clone(), Action::Nothing),
            (Some(cp(Retired, None, Incremental, none.clone())), Selected, none.clone(), Action::Nothing),
            (Some(cp(Retired, None, Incremental, none.clone())), Gone, none.clone(), Action::Nothing),
            (Some(cp(Retired, None, Incremental, none.clone())), Excluded, none.clone(), Action::Nothing),
            (Some(cp(Syncing, delta(), Incremental, none.clone())), Gone, none.clone(), Action::Retire),
            (Some(cp(Parked, None, Incremental, none.clone())), Gone, none.clone(), Action::Retire),
            (Some(cp(NeedsRebaseline, None, Rebaseline, none.clone())), Gone, none.clone(), Action::Retire),
            (Some(cp(Parked, None, Incremental, none.clone())), Excluded, none.clone(), Action::Nothing),
            (Some(cp(Syncing, next(), Baseline, none.clone())), Excluded, none.clone(), Action::Park),
            (Some(cp(NeedsRebaseline, None, Rebaseline, none.clone())), Excluded, none.clone(), Action::Park),
            (Some(cp(Parked, None, Incremental, none.clone())), Selected, none.clone(), Action::Rebaseline(R::BackInScope)),
            (Some(cp(NeedsRebaseline, None, Incremental, none.clone())), Selected, none.clone(), Action::Rebaseline(R::Requested)),
            (Some(cp(Syncing, delta(), Incremental, none.clone())), Selected, after(3), Action::Rebaseline(R::ScopeChanged)),
            (Some(cp(Syncing, next(), Baseline, after(3))), Selected, after(4), Action::Rebaseline(R::ScopeChanged)),
            (Some(cp(Syncing, delta(), Incremental, after(3))), Selected, none.clone(), Action::Rebaseline(R::ScopeChanged)),
            (Some(cp(Syncing, next(), Rebaseline, none.clone())), Selected, none.clone(), Action::Resume { link: next().unwrap(), round: cp(Syncing, next(), Rebaseline, none.clone()).round }),
            (Some(without_seen_log(cp(Syncing, next(), Rebaseline, none.clone()))), Selected, none.clone(), Action::Rebaseline(R::Interrupted)),
            (Some(cp(Syncing, next(), Baseline, none.clone())), Selected, none.clone(), Action::Resume { link: next().unwrap(), round: resume_round }),
            (Some(cp(Syncing, delta(), Incremental, after(3))), Selected, after(3), Action::Incremental { link: delta().unwrap() }),
            (Some(cp(Syncing, delta(), Rebaseline, none.clone())), Selected, none.clone(), Action::Incremental { link: delta().unwrap() }),
            (Some(cp(Syncing, None, Incremental, none.clone())), Selected, none.clone(), Action::Rebaseline(R::NoCursor)),
        ];
        for (i, (previous, membership, scope, want)) in rows.into_iter().enumerate() {
            let got = plan_partition(previous.as_ref(), membership, &scope);
            let got = match (got, &want) {
                // A resumed rebaseline keeps its log; its salt is random.
                (Action::Resume { link, mut round }, Action::Resume { round: w, .. }) if round.seen.is_some() => {
                    round.seen.clone_from(&w.seen);
                    Action::Resume { link, round }
                }
                (got, _) => got,
            };
            assert_eq!(got, want, "row {i}: {:?} {membership:?} {scope:?}", previous.as_ref().map(|c| (c.state, &c.cursor, c.round.kind)));
        }
    }

    #[test]
    fn resuming_keeps_the_committed_round() {
        let mut c = cp(Syncing, next(), Incremental, after(1));
        c.round.pages = 7;
        let Action::Resume { round, .. } = plan_partition(Some(&c), Selected, &after(1)) else { panic!("expected a resume") };
        assert_eq!(round, c.round);
    }

    #[test]
    fn memberships_cover_selected_excluded_and_gone_folders() {
        let none = RoundScope::default();
        let existing = vec![
            cp_for("kept", Syncing, delta(), Incremental, none.clone()),
            cp_for("left-scope", Syncing, delta(), Incremental, none.clone()),
            cp_for("deleted", Syncing, delta(), Incremental, none.clone()),
            // Other streams' partitions are not messages partitions.
            Checkpoint { partition: PartitionKey::new("m", Stream::Events, None), ..cp(Syncing, delta(), Incremental, none.clone()) },
        ];
        let present: HashSet<String> = ["kept", "left-scope", "new"].map(String::from).into();
        let selected = vec!["new".to_string(), "kept".to_string()];
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            memberships(Stream::Messages, &existing, &present, &selected),
            vec![(some("new"), Selected), (some("kept"), Selected), (some("deleted"), Gone), (some("left-scope"), Excluded),]
        );
    }

    #[test]
    fn a_mailbox_plan_leaves_out_partitions_with_nothing_to_do() {
        let none = RoundScope::default();
        let existing = vec![
            cp_for("kept", Syncing, delta(), Incremental, none.clone()),
            cp_for("parked", Parked, None, Incremental, none.clone()),
            cp_for("retired", Retired, None, Incremental, none.clone()),
            cp_for("deleted", Syncing, delta(), Incremental, none.clone()),
        ];
        let present: HashSet<String> = ["kept", "parked", "new"].map(String::from).into();
        let selected = vec!["kept".to_string(), "new".to_string()];
        let plan: Vec<(String, Membership, Action)> = plan_children("m", Stream::Messages, &existing, &present, &selected, &none)
            .into_iter()
            .map(|p| (p.partition.folder_id.unwrap(), p.membership, p.action))
            .collect();
        assert_eq!(
            plan,
            vec![
                ("kept".into(), Selected, Action::Incremental { link: delta().unwrap() }),
                ("new".into(), Selected, Action::Baseline),
                ("deleted".into(), Gone, Action::Retire),
            ]
        );
    }

    #[test]
    fn the_legacy_events_partition_is_retired_when_calendars_take_over() {
        let none = RoundScope::default();
        let events = |folder: Option<&str>, state| Checkpoint {
            partition: PartitionKey::new("m", Stream::Events, folder.map(str::to_string)),
            ..cp(state, delta(), Incremental, none.clone())
        };
        let existing = vec![events(None, Syncing), events(Some("cal-a"), Syncing), cp_for("folder", Syncing, delta(), Incremental, none.clone())];
        let present: HashSet<String> = ["cal-a", "cal-b"].map(String::from).into();
        let selected = vec!["cal-a".to_string(), "cal-b".to_string()];
        let plan: Vec<(Option<String>, Membership, Action)> = plan_children("m", Stream::Events, &existing, &present, &selected, &none)
            .into_iter()
            .map(|p| (p.partition.folder_id, p.membership, p.action))
            .collect();
        assert_eq!(
            plan,
            vec![
                (Some("cal-a".into()), Selected, Action::Incremental { link: delta().unwrap() }),
                (Some("cal-b".into()), Selected, Action::Baseline),
                (None, Gone, Action::Retire),
            ]
        );
        // Once retired, the legacy partition is left alone.
        let existing = vec![events(None, Retired)];
        assert!(plan_children("m", Stream::Events, &existing, &present, &[], &none).is_empty());
    }

    #[test]
    fn a_rolled_calendar_window_rebaselines() {
        let window = |m: u32| RoundScope {
            calendar_window: Some(crate::model::CalendarWindow {
                start: chrono::DateTime::from_timestamp(i64::from(m) * 30 * 86_400, 0).unwrap(),
                end: chrono::DateTime::from_timestamp(i64::from(m + 24) * 30 * 86_400, 0).unwrap(),
            }),
            ..RoundScope::default()
        };
        let c = Checkpoint { partition: PartitionKey::new("m", Stream::Events, Some("cal".into())), ..cp(Syncing, delta(), Incremental, window(1)) };
        assert_eq!(plan_partition(Some(&c), Selected, &window(1)), Action::Incremental { link: delta().unwrap() });
        assert_eq!(plan_partition(Some(&c), Selected, &window(2)), Action::Rebaseline(R::ScopeChanged));
    }
}
