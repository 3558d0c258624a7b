//! Calendars: every calendar of a mailbox, a window that rolls, and lakes written before events
//! were partitioned per calendar. Each test compares the rebuilt current state with the
//! simulator's truth for the window in force and the calendars selected.

use std::path::Path;

use chrono::{DateTime, Duration, TimeZone, Utc};
use outlake_simulator::{Mutation, SimConfig};
use serde_json::{Value, json};

use super::support::{Env, assert_success, current_state, read_rows};
use super::truth::{CALENDAR_TABLES, Calendars, Expect, assert_lake_equals_truth_for, expected_tables_for, selected_calendars};

/// The simulated calendars are centred on this day; events also spread three years around it.
fn anchor() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 15, 0, 0, 0).unwrap()
}

fn sim_config(seed: u64) -> SimConfig {
    // Three users: two mailboxes (each sees a calendar shared by the other) and one without.
    SimConfig { seed, users: 3, messages_per_mailbox: 5, events_per_mailbox: 80, anchor: Some(anchor()), ..SimConfig::default() }
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn mutation(v: Value) -> Mutation {
    serde_json::from_value(v).expect("a simulator mutation")
}

/// Events partitions a run with `which` calendars has: one per selected calendar per mailbox.
fn partitions(truth: &Value, which: Calendars) -> u64 {
    truth["mailboxes"].as_array().unwrap().iter().filter(|m| m["has_mailbox"] == json!(true)).map(|m| selected_calendars(m, which).len() as u64).sum()
}

fn event_keys(truth: &Value, expect: Expect) -> std::collections::BTreeSet<String> {
    expected_tables_for(truth, expect).remove("events").unwrap_or_default().into_keys().collect()
}

fn set_config_line(env: &Env, from: &str, to: &str) {
    let text = std::fs::read_to_string(&env.config).unwrap();
    assert!(text.contains(from), "config has no line {from:?}");
    std::fs::write(&env.config, text.replace(from, to)).unwrap();
}

/// A window changed in the config: the next run re-baselines every calendar with the new window,
/// deleting events that left it and adding those that entered it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_window_rebaselines_every_calendar() {
    let a = (at("2025-01-01T00:00:00Z"), at("2026-09-01T00:00:00Z"));
    let b = (at("2026-03-01T00:00:00Z"), at("2027-12-01T00:00:00Z"));
    let env = Env::start(sim_config(141), "streams = [\"events\"]\ncalendar_start = \"2025-01-01T00:00:00Z\"\ncalendar_end = \"2026-09-01T00:00:00Z\"\n").await;
    let first = env.sync_reported(&[]);
    let truth = env.sim.truth();
    let in_a = Expect { window: a, calendars: Calendars::Owned, tables: &CALENDAR_TABLES };
    let in_b = Expect { window: b, calendars: Calendars::Owned, tables: &CALENDAR_TABLES };
    assert_lake_equals_truth_for(&env.lake(), &truth, in_a);
    assert_eq!(first["totals"]["window_rollovers"], 0, "a first sync rolls nothing");
    let (keys_a, keys_b) = (event_keys(&truth, in_a), event_keys(&truth, in_b));
    assert!(keys_a.difference(&keys_b).count() > 0 && keys_b.difference(&keys_a).count() > 0, "the windows differ in events both ways");

    set_config_line(&env, "calendar_start = \"2025-01-01T00:00:00Z\"", "calendar_start = \"2026-03-01\"");
    set_config_line(&env, "calendar_end = \"2026-09-01T00:00:00Z\"", "calendar_end = \"2027-12-01T00:00:00Z\"");
    let second = env.sync_reported(&[]);
    assert_lake_equals_truth_for(&env.lake(), &env.sim.truth(), in_b);
    assert_eq!(second["totals"]["window_rollovers"].as_u64(), Some(partitions(&truth, Calendars::Owned)), "{second:#}");
    let left = keys_a.difference(&keys_b).count() as u64;
    assert!(second["totals"]["deletes"].as_u64().unwrap() >= left, "every event that left the window got a delete row");

    // `status` shows each calendar partition's window.
    let status = env.outlake(&["status", "--json"]);
    assert_success(&status);
    let rows: Value = serde_json::from_slice(&status.stdout).unwrap();
    let windows: Vec<&Value> = rows.as_array().unwrap().iter().filter(|r| r["stream"] == "events").map(|r| &r["calendar_window"]).collect();
    assert_eq!(windows.len() as u64, partitions(&truth, Calendars::Owned));
    for w in windows {
        assert_eq!((at(w["start"].as_str().unwrap()), at(w["end"].as_str().unwrap())), b, "{rows:#}");
    }
    env.sim.shutdown().await;
}

/// A relative window moves once per `calendar_roll` period: not between two runs of the same
/// month, and across a month boundary every calendar re-baselines with the new window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_window_rolls_at_the_month_boundary() {
    let env = Env::start(sim_config(142), "streams = [\"events\"]\ncalendar_start = \"-90d\"\ncalendar_end = \"+120d\"\n").await;
    let june = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
    let july = Utc.with_ymd_and_hms(2026, 7, 1, 0, 0, 0).unwrap();
    let in_june = Expect { window: (june - Duration::days(90), june + Duration::days(120)), calendars: Calendars::Owned, tables: &CALENDAR_TABLES };
    let in_july = Expect { window: (july - Duration::days(90), july + Duration::days(120)), calendars: Calendars::Owned, tables: &CALENDAR_TABLES };

    // An event only June's window holds, and one only July's does.
    let mailbox = env.sim.mailbox_ids()[0].clone();
    env.sim
        .mutate(vec![
            mutation(json!({"op": "create_event", "mailbox": mailbox, "subject": "Spring review", "start": at("2026-03-20T09:00:00Z")})),
            mutation(json!({"op": "create_event", "mailbox": mailbox, "subject": "Autumn kickoff", "start": at("2026-10-12T09:00:00Z")})),
        ])
        .unwrap();
    env.sync_reported(&[("OUTLAKE_NOW", "2026-06-30T23:00:00Z")]);
    let truth = env.sim.truth();
    assert_lake_equals_truth_for(&env.lake(), &truth, in_june);
    let (keys_june, keys_july) = (event_keys(&truth, in_june), event_keys(&truth, in_july));
    assert!(keys_june.difference(&keys_july).count() > 0 && keys_july.difference(&keys_june).count() > 0, "the month's roll gains and loses events");

    // Later the same month: the same window, an incremental run.
    let same = env.sync_reported(&[("OUTLAKE_NOW", "2026-06-30T23:30:00Z")]);
    assert_eq!((same["totals"]["window_rollovers"].as_u64(), same["totals"]["rebaselines"].as_u64()), (Some(0), Some(0)), "{same:#}");

    // Ten minutes into July: the window rolled.
    let rolled = env.sync_reported(&[("OUTLAKE_NOW", "2026-07-01T00:10:00Z")]);
    assert_eq!(rolled["totals"]["window_rollovers"].as_u64(), Some(partitions(&truth, Calendars::Owned)), "{rolled:#}");
    assert_lake_equals_truth_for(&env.lake(), &env.sim.truth(), in_july);
    env.sim.shutdown().await;
}

/// Calendars created and deleted, and an event moved between calendars, with incremental runs
/// in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calendars_come_and_go_and_events_move_between_them() {
    let env = Env::start(sim_config(143), "streams = [\"events\"]\n").await;
    let expect = Expect { tables: &CALENDAR_TABLES, ..Expect::default() };
    env.sync_reported(&[]);
    let truth = env.sim.truth();
    assert_lake_equals_truth_for(&env.lake(), &truth, expect);

    let mb = &truth["mailboxes"][0];
    let mailbox = mb["id"].as_str().unwrap().to_string();
    let default_cal = mb["calendars"].as_array().unwrap().iter().find(|c| c["isDefaultCalendar"] == json!(true)).unwrap()["id"].as_str().unwrap().to_string();
    let moved = mb["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["calendarId"] == json!(default_cal)
                && e["type"] == "singleInstance"
                && event_keys(&truth, expect).iter().any(|k| k.ends_with(e["id"].as_str().unwrap()))
        })
        .expect("an event of the default calendar in the window")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let created = env.sim.mutate(vec![mutation(json!({"op": "create_calendar", "mailbox": mailbox, "name": "Launch"}))]).unwrap();
    let launch = created[0]["id"].as_str().unwrap().to_string();
    let start = anchor() + Duration::days(3);
    env.sim
        .mutate(vec![
            mutation(json!({"op": "create_event", "mailbox": mailbox, "calendar": launch, "subject": "Launch review", "start": start})),
            mutation(json!({"op": "move_event_to_calendar", "mailbox": mailbox, "id": moved, "to_calendar": launch})),
        ])
        .unwrap();
    let second = env.sync_reported(&[]);
    assert_eq!(second["totals"]["rebaselines"], 0, "{second:#}");
    assert_lake_equals_truth_for(&env.lake(), &env.sim.truth(), expect);
    let events = current_state(&env.lake(), "events");
    let moved_rows: Vec<&str> = events.values().filter(|r| r["id"] == json!(moved)).map(|r| r["calendar_id"].as_str().unwrap()).collect();
    assert_eq!(moved_rows, vec![launch.as_str()], "the moved event lives in its new calendar only");

    let in_launch = events.values().filter(|r| r["calendar_id"] == json!(launch)).count() as u64;
    env.sim.mutate(vec![mutation(json!({"op": "delete_calendar", "mailbox": mailbox, "id": launch}))]).unwrap();
    let third = env.sync_reported(&[]);
    assert_lake_equals_truth_for(&env.lake(), &env.sim.truth(), expect);
    assert_eq!(third["mailboxes"].as_array().unwrap().iter().map(|m| m["streams"]["calendars"]["deletes"].as_u64().unwrap_or(0)).sum::<u64>(), 1);
    assert!(third["totals"]["deletes"].as_u64().unwrap() > in_launch, "the deleted calendar's events and its listing row got delete rows");
    assert!(current_state(&env.lake(), "events").values().all(|r| r["calendar_id"] != json!(launch)));
    assert!(!current_state(&env.lake(), "calendars").contains_key(&format!("{mailbox}|{launch}")));
    env.sim.shutdown().await;
}

/// `calendars = "owned"` leaves calendars shared with the mailbox out; `"all"` takes them in;
/// going back to `"owned"` deletes their events again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owned_versus_all_calendars() {
    let env = Env::start(sim_config(144), "streams = [\"events\"]\ncalendars = \"owned\"\n").await;
    let owned = Expect { tables: &CALENDAR_TABLES, ..Expect::default() };
    let all = Expect { calendars: Calendars::All, ..owned };
    env.sync_reported(&[]);
    let truth = env.sim.truth();
    assert_lake_equals_truth_for(&env.lake(), &truth, owned);
    assert!(event_keys(&truth, all).len() > event_keys(&truth, owned).len(), "shared calendars hold events");
    // The calendars table lists every calendar, shared ones included.
    assert_eq!(current_state(&env.lake(), "calendars").len(), expected_tables_for(&truth, all)["calendars"].len());

    set_config_line(&env, "calendars = \"owned\"", "calendars = \"all\"");
    env.sync_reported(&[]);
    assert_lake_equals_truth_for(&env.lake(), &env.sim.truth(), all);

    set_config_line(&env, "calendars = \"all\"", "calendars = \"owned\"");
    let back = env.sync_reported(&[]);
    assert_lake_equals_truth_for(&env.lake(), &env.sim.truth(), owned);
    assert!(back["totals"]["calendars_excluded"].as_u64().unwrap() > 0, "{back:#}");
    env.sim.shutdown().await;
}

/// A lake written before events were partitioned per calendar — one events partition per
/// mailbox, rows without `calendar_id`, commit records of format 2 — rebuilds to the truth on
/// the first run: the old partition is retired (its rows get delete rows) and every calendar
/// is baselined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lake_with_one_events_partition_per_mailbox_is_taken_over_by_calendars() {
    let env = Env::start(sim_config(145), "").await;
    env.sync_reported(&[]);
    assert!(rewrite_as_one_events_partition_per_mailbox(&env.lake(), &env.sim.url()) > 0);
    let legacy_rows = current_state(&env.lake(), "events").len() as u64;
    assert!(read_rows(&env.lake(), "events").iter().all(|r| !r.contains_key("calendar_id")), "the lake looks as the earlier release left it");

    let report = env.sync_reported(&[]);
    assert_lake_equals_truth_for(&env.lake(), &env.sim.truth(), Expect::default());
    let event_deletes: u64 = report["mailboxes"].as_array().unwrap().iter().map(|m| m["streams"]["events"]["deletes"].as_u64().unwrap_or(0)).sum();
    assert_eq!(event_deletes, legacy_rows, "every row of the old partition got a delete row, once");
    let status: Value = serde_json::from_slice(&env.outlake(&["status", "--json"]).stdout).unwrap();
    let legacy: Vec<&str> =
        status.as_array().unwrap().iter().filter(|r| r["stream"] == "events" && r["folder_id"].is_null()).map(|r| r["state"].as_str().unwrap()).collect();
    assert_eq!(legacy.len(), 2, "{status:#}");
    assert!(legacy.iter().all(|s| *s == "retired"), "{status:#}");

    // A second run leaves the retired partition alone.
    let again = env.sync_reported(&[]);
    assert_eq!(again["totals"]["deletes"], 0, "{again:#}");
    assert_lake_equals_truth_for(&env.lake(), &env.sim.truth(), Expect::default());
    env.sim.shutdown().await;
}

/// Turn a lake into what the previous release wrote: per mailbox, every events row (without the
/// `calendar_id` column) in one file of the single events partition, committed by a format-2
/// record; no calendars table. Returns the rows written.
fn rewrite_as_one_events_partition_per_mailbox(lake: &Path, graph_url: &str) -> u64 {
    use arrow::array::RecordBatch;
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let file_id = "01890a5d-ac96-774b-bcce-b302099a8057";
    let mut total = 0;
    std::fs::remove_dir_all(lake.join("calendars")).unwrap();
    for mailbox_dir in std::fs::read_dir(lake.join("events")).unwrap().map(|e| e.unwrap().path()) {
        let slug = mailbox_dir.file_name().unwrap().to_str().unwrap().to_string();
        let mut batches: Vec<RecordBatch> = Vec::new();
        for f in std::fs::read_dir(&mailbox_dir).unwrap().map(|e| e.unwrap().path()) {
            let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&f).unwrap()).unwrap().build().unwrap();
            for b in reader {
                let b = b.unwrap();
                let keep: Vec<usize> = (0..b.num_columns()).filter(|i| b.schema().field(*i).name() != "calendar_id").collect();
                batches.push(b.project(&keep).unwrap());
            }
            std::fs::remove_file(&f).unwrap();
        }
        let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        let mailbox_id = {
            let col = batches[0].column_by_name("mailbox_id").unwrap();
            arrow::array::cast::AsArray::as_string::<i32>(col).value(0).to_string()
        };
        let max_seq = batches
            .iter()
            .filter_map(|b| arrow::compute::max(arrow::array::cast::AsArray::as_primitive::<arrow::datatypes::Int64Type>(b.column_by_name("_seq").unwrap())))
            .max()
            .unwrap();
        let table_path = format!("events/{slug}/part-events-{file_id}.parquet");
        let mut w = ArrowWriter::try_new(std::fs::File::create(lake.join(&table_path)).unwrap(), batches[0].schema(), None).unwrap();
        for b in &batches {
            w.write(b).unwrap();
        }
        w.close().unwrap();
        let bytes = std::fs::metadata(lake.join(&table_path)).unwrap().len();
        let state = lake.join("_state").join(&slug);
        for d in std::fs::read_dir(&state).unwrap().map(|e| e.unwrap().path()) {
            let name = d.file_name().unwrap().to_str().unwrap().to_string();
            if name.starts_with("events") || name.starts_with("calendars") {
                std::fs::remove_dir_all(&d).unwrap();
            }
        }
        std::fs::create_dir_all(state.join("events")).unwrap();
        let record = json!({
            "format_version": 2,
            "partition": {"mailbox_id": mailbox_id, "stream": "events", "folder_id": null},
            "seq": 1,
            "state": "syncing",
            "cursor": {"kind": "delta", "url": format!("{graph_url}/v1.0/users/{mailbox_id}/calendarView/delta?$deltatoken=from-the-previous-release")},
            "round": {"kind": "baseline", "started_seq": 1, "pages": 1, "scope": {}},
            "high_water_seq": max_seq,
            "files": [{"staging_path": format!("_staging/{file_id}.parquet"), "table_path": table_path, "rows": rows, "bytes": bytes}],
            "run_id": "previous-release",
            "committed_at": "2026-11-01T00:00:00Z",
            "total_rows": rows,
            "rebaselines": 0,
        });
        std::fs::write(state.join("events").join("00000000000000000001.json"), serde_json::to_vec_pretty(&record).unwrap()).unwrap();
        total += rows;
    }
    total
}
