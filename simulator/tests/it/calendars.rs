//! Several calendars per mailbox: the listing, per-calendar calendarView delta, moves between
//! calendars, deleted calendars, and the `delta()` function-call form of every delta route.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use outlake_simulator::{Mutation, SimConfig};
use serde_json::Value;

use crate::delta::urlencode;
use crate::{Env, IMM, small};

/// A window bound as the tests write it (`2024-01-01T00:00:00Z`).
pub fn instant(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// `start`/`end` of a served event as instants (all-day events are wall-clock in their zone).
fn range(ev: &Value) -> (DateTime<Utc>, DateTime<Utc>) {
    let at = |v: &Value| {
        let local = NaiveDateTime::parse_from_str(v["dateTime"].as_str().unwrap(), "%Y-%m-%dT%H:%M:%S%.f").unwrap();
        outlake_simulator::tz::to_utc(local, v["timeZone"].as_str().unwrap())
    };
    (at(&ev["start"]), at(&ev["end"]))
}

/// Whether a truth event overlaps `[start, end)`.
pub fn overlaps(ev: &Value, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
    let (s, e) = range(ev);
    s < end && e > start
}

/// A truth event as delta serves it: without the truth-only `calendarId`.
pub fn served(ev: &Value) -> Value {
    let mut v = ev.clone();
    v.as_object_mut().unwrap().remove("calendarId");
    v
}

fn ids(items: &[Value]) -> BTreeSet<String> {
    items.iter().map(|v| v["id"].as_str().unwrap().to_string()).collect()
}

fn anchor() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 10, 0, 0, 0).unwrap()
}

fn world() -> SimConfig {
    SimConfig { calendars_per_mailbox: 3, events_per_mailbox: 60, anchor: Some(anchor()), ..small() }
}

/// A window of `days` days starting `before` days before the anchor, as query parameters.
fn window(before: i64, days: i64) -> (String, DateTime<Utc>, DateTime<Utc>) {
    let (s, e) = (anchor() - Duration::days(before), anchor() - Duration::days(before) + Duration::days(days));
    let q = format!("startDateTime={}&endDateTime={}", s.format("%Y-%m-%dT%H:%M:%SZ"), e.format("%Y-%m-%dT%H:%M:%SZ"));
    (q, s, e)
}

fn cal_delta(env: &Env, mb: &str, cal: &str, q: &str) -> String {
    env.graph(&format!("/users/{mb}/calendars/{}/calendarView/delta?{q}", urlencode(cal)))
}

async fn status_code(env: &Env, url: &str) -> (u16, Value) {
    let r = env.get(url, &[IMM]).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn listing_pages_and_matches_truth() {
    let env = Env::new(world()).await;
    let mb = env.mailbox();
    let truth = env.truth_mailbox(&mb);
    let cals = truth["calendars"].as_array().unwrap();
    assert_eq!(cals.len(), 5, "default + 3 created + 1 shared");

    // Pages of 2 with a $skip nextLink, in a stable order equal to the truth.
    let mut got = Vec::new();
    let mut next = env.graph(&format!("/users/{mb}/calendars?$top=2"));
    let mut pages = 0;
    loop {
        let v = env.get_json(&next, &[]).await;
        pages += 1;
        assert!(v["@odata.context"].as_str().unwrap().ends_with("/calendars"));
        let page = v["value"].as_array().unwrap();
        assert!(page.len() <= 2);
        got.extend(page.iter().cloned());
        match v.get("@odata.nextLink") {
            Some(n) => {
                next = n.as_str().unwrap().to_string();
                assert!(next.contains("$skip="), "{next}");
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(&got, cals);
    // Default page size 10: everything on one page.
    let v = env.get_json(&env.graph(&format!("/users/{mb}/calendars")), &[]).await;
    assert_eq!(v["value"].as_array().unwrap(), cals);
    assert!(v.get("@odata.nextLink").is_none());
    assert_eq!(env.get(&env.graph(&format!("/users/{mb}/calendars?$top=0")), &[]).await.status(), 400);

    // The default calendar, calendars the user made, one shared by another user.
    let user = env.get_json(&env.graph(&format!("/users/{mb}")), &[]).await;
    let def = &cals[0];
    assert_eq!(def["name"], "Calendar");
    assert_eq!(def["isDefaultCalendar"], true);
    assert_eq!(def["isRemovable"], false);
    assert_eq!(def["color"], "auto");
    assert_eq!(def["hexColor"], "");
    assert_eq!(def["owner"]["address"], user["mail"]);
    assert_eq!(def["owner"]["name"], user["displayName"]);
    let names: Vec<&str> = cals.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(&names[1..4], ["Team", "Projects", "Holidays"]);
    for c in &cals[1..4] {
        assert_eq!(c["isDefaultCalendar"], false);
        assert_eq!(c["isRemovable"], true);
        assert_eq!(c["canEdit"], true);
        assert_eq!(c["owner"], def["owner"]);
        assert!(c["hexColor"].as_str().unwrap().starts_with('#'));
    }
    let shared = &cals[4];
    assert_eq!(shared["canEdit"], false);
    assert_eq!(shared["isRemovable"], true);
    assert_ne!(shared["owner"]["address"], def["owner"]["address"]);
    assert!(shared["name"].as_str().unwrap().ends_with("'s calendar"));
    for key in [
        "id",
        "name",
        "color",
        "hexColor",
        "isDefaultCalendar",
        "changeKey",
        "canShare",
        "canViewPrivateItems",
        "canEdit",
        "isRemovable",
        "allowedOnlineMeetingProviders",
        "defaultOnlineMeetingProvider",
        "isTallyingResponses",
        "owner",
    ] {
        assert!(shared.get(key).is_some(), "{key}");
    }
    // Regression: the shared calendar said `"defaultOnlineMeetingProvider": "none"`, which is not
    // a member of Graph's onlineMeetingProviderType, so Microsoft's SDK (msgraph-sdk, through
    // scripts/sdk-conformance) silently parsed it as null. Graph says `unknown`.
    assert_eq!(shared["defaultOnlineMeetingProvider"], "unknown");
    for c in cals {
        let p = c["defaultOnlineMeetingProvider"].as_str().unwrap();
        assert!(["unknown", "skypeForBusiness", "skypeForConsumer", "teamsForBusiness"].contains(&p), "{p}");
    }

    // One calendar, by path segment, OData key form, and the default as `calendar`.
    let id = cals[2]["id"].as_str().unwrap();
    let one = env.get_json(&env.graph(&format!("/users/{mb}/calendars/{}", urlencode(id))), &[]).await;
    assert_eq!(one["name"], cals[2]["name"]);
    let keyed = env.get_json(&env.graph(&format!("/users/{mb}/Calendars('{}')", urlencode(id))), &[]).await;
    assert_eq!(keyed["id"], id);
    let dflt = env.get_json(&env.graph(&format!("/users/{mb}/calendar")), &[]).await;
    assert_eq!(dflt["id"], def["id"]);
    let (status, v) = status_code(&env, &env.graph(&format!("/users/{mb}/calendars/AAMkNoSuchCalendar"))).await;
    assert_eq!(status, 404);
    assert_eq!(v["error"]["code"], "ErrorItemNotFound");

    // Every other calendar has events; some events lie years away from the anchor.
    for c in &cals[1..] {
        let n = truth["events"].as_array().unwrap().iter().filter(|e| e["calendarId"] == c["id"]).count();
        assert!(n >= 2, "{}: {n}", c["name"]);
    }
    let far = truth["events"].as_array().unwrap().iter().filter(|e| (range(e).0 - anchor()).num_days().abs() > 365).count();
    assert!(far >= 2, "{far}");

    let stats = env.sim.stats();
    assert!(stats["requests_by_kind"]["calendars"].as_u64().unwrap() >= 4);
    assert!(stats["requests_by_kind"]["calendar"].as_u64().unwrap() >= 3);
}

#[tokio::test]
async fn per_calendar_delta_serves_that_calendar_in_the_window() {
    let env = Env::new(world()).await;
    let mb = env.mailbox();
    let truth = env.truth_mailbox(&mb);
    let (q, ws, we) = window(1100, 1800);
    let mut seen = BTreeSet::new();
    for c in truth["calendars"].as_array().unwrap() {
        let cid = c["id"].as_str().unwrap();
        let url = cal_delta(&env, &mb, cid, &q);
        let first = env.get_json(&url, &[IMM]).await;
        let next = first["@odata.nextLink"].as_str().unwrap();
        assert!(next.contains("/calendars('"), "links keep the calendar: {next}");
        let (items, delta, _) = env.round(&url, &[IMM, "odata.maxpagesize=7"]).await;
        assert!(delta.contains("/calendars('") && delta.contains("$deltatoken="), "{delta}");
        let expected: Vec<Value> =
            truth["events"].as_array().unwrap().iter().filter(|e| e["calendarId"] == c["id"] && overlaps(e, ws, we)).map(served).collect();
        assert!(!expected.is_empty(), "{}", c["name"]);
        assert_eq!(items.len(), expected.len(), "{}", c["name"]);
        for it in &items {
            assert_eq!(Some(it), expected.iter().find(|e| e["id"] == it["id"]));
        }
        seen.extend(ids(&items));
        // The default calendar also answers at calendarView/delta and calendar/calendarView/delta.
        if c["isDefaultCalendar"] == true {
            for path in ["calendarView/delta", "calendar/calendarView/delta"] {
                let (plain, d, _) = env.round(&env.graph(&format!("/users/{mb}/{path}?{q}")), &[IMM]).await;
                assert_eq!(ids(&plain), ids(&items), "{path}");
                assert!(d.contains(&format!("/{path}?$deltatoken=")), "{d}");
            }
        }
    }
    // A narrower window really drops the distant events.
    let all_in_window = truth["events"].as_array().unwrap().iter().filter(|e| overlaps(e, ws, we)).count();
    assert_eq!(seen.len(), all_in_window);
    assert!(all_in_window < truth["events"].as_array().unwrap().len(), "some events lie beyond the window");
    let (near, ns, ne) = window(30, 120);
    let def = truth["calendars"][0]["id"].as_str().unwrap();
    let (items, _, _) = env.round(&cal_delta(&env, &mb, def, &near), &[IMM]).await;
    let expected = truth["events"].as_array().unwrap().iter().filter(|e| e["calendarId"] == def && overlaps(e, ns, ne)).count();
    assert_eq!(items.len(), expected);

    // Unknown calendar: 404 ErrorItemNotFound.
    let (status, v) = status_code(&env, &cal_delta(&env, &mb, "AAMkNoSuchCalendar", &q)).await;
    assert_eq!(status, 404);
    assert_eq!(v["error"]["code"], "ErrorItemNotFound");
    assert!(env.sim.stats()["requests_by_kind"]["calendar_view_delta"].as_u64().unwrap() >= 10);
}

#[tokio::test]
async fn moving_an_event_between_calendars() {
    let env = Env::new(world()).await;
    let mb = env.mailbox();
    let truth = env.truth_mailbox(&mb);
    let (q, ws, we) = window(60, 200);
    let a = truth["calendars"][0]["id"].as_str().unwrap().to_string();
    let b = truth["calendars"][1]["id"].as_str().unwrap().to_string();
    let (a_items, a_delta, _) = env.round(&cal_delta(&env, &mb, &a, &q), &[IMM]).await;
    let (b_items, b_delta, _) = env.round(&cal_delta(&env, &mb, &b, &q), &[IMM]).await;
    let moved = a_items.iter().find(|e| overlaps(e, ws, we)).unwrap()["id"].as_str().unwrap().to_string();
    assert!(!ids(&b_items).contains(&moved));

    let res = env
        .sim
        .mutate(vec![
            Mutation::MoveEventToCalendar { mailbox: mb.clone(), id: moved.clone(), to_calendar: b.clone() },
            Mutation::CreateEvent {
                mailbox: mb.clone(),
                subject: Some("in B".into()),
                start: Some(anchor() + Duration::days(3)),
                duration_minutes: None,
                all_day: false,
                calendar: Some(b.clone()),
            },
        ])
        .unwrap();
    let created = res[1]["id"].as_str().unwrap().to_string();
    assert_eq!(res[0]["calendar"], b.as_str());

    let (a_ch, a_delta2, _) = env.round(&a_delta, &[IMM]).await;
    assert_eq!(a_ch.len(), 1, "{a_ch:#?}");
    assert_eq!(a_ch[0]["id"], moved.as_str());
    assert_eq!(a_ch[0]["@removed"]["reason"], "deleted");
    let (b_ch, b_delta2, _) = env.round(&b_delta, &[IMM]).await;
    assert_eq!(ids(&b_ch), BTreeSet::from([moved.clone(), created.clone()]));
    let t = env.truth_mailbox(&mb);
    let tm = t["events"].as_array().unwrap().iter().find(|e| e["id"] == moved.as_str()).unwrap();
    assert_eq!(tm["calendarId"], b.as_str());
    assert_eq!(b_ch.iter().find(|e| e["id"] == moved.as_str()).unwrap(), &served(tm), "same id, served in full");
    assert_eq!(b_ch.iter().find(|e| e["id"] == created.as_str()).unwrap()["subject"], "in B");

    // And back: present again in A, removed from B.
    env.sim.mutate(vec![Mutation::MoveEventToCalendar { mailbox: mb.clone(), id: moved.clone(), to_calendar: a.clone() }]).unwrap();
    let (a_back, _, _) = env.round(&a_delta2, &[IMM]).await;
    assert_eq!(ids(&a_back), BTreeSet::from([moved.clone()]));
    assert!(a_back[0].get("@removed").is_none());
    let (b_back, _, _) = env.round(&b_delta2, &[IMM]).await;
    assert_eq!(ids(&b_back), BTreeSet::from([moved.clone()]));
    assert_eq!(b_back[0]["@removed"]["reason"], "deleted");
    let t = env.truth_mailbox(&mb);
    assert_eq!(t["events"].as_array().unwrap().iter().find(|e| e["id"] == moved.as_str()).unwrap()["calendarId"], a.as_str());

    // Unknown target calendar: refused.
    assert!(env.sim.mutate(vec![Mutation::MoveEventToCalendar { mailbox: mb.clone(), id: moved, to_calendar: "nope".into() }]).is_err());
}

#[tokio::test]
async fn calendar_mutations_and_deleted_calendar_404() {
    let env = Env::new(world()).await;
    let mb = env.mailbox();
    let other = env.sim.mailbox_ids()[1].clone();
    let truth = env.truth_mailbox(&mb);
    let (q, _, _) = window(1100, 1800);
    let team = truth["calendars"][1].clone();
    let tid = team["id"].as_str().unwrap().to_string();
    let url = cal_delta(&env, &mb, &tid, &q);
    let (items, delta, _) = env.round(&url, &[IMM]).await;
    assert!(!items.is_empty());
    // A nextLink left mid-round.
    let first = env.get_json(&url, &[IMM, "odata.maxpagesize=1"]).await;
    let next = first["@odata.nextLink"].as_str().unwrap().to_string();

    // Create (own and shared), update, delete.
    let res = env
        .sim
        .mutate(vec![
            Mutation::CreateCalendar { mailbox: mb.clone(), name: "Side project".into(), shared_from: None },
            Mutation::CreateCalendar { mailbox: mb.clone(), name: "Their plans".into(), shared_from: Some(other.clone()) },
            Mutation::UpdateCalendar {
                mailbox: mb.clone(),
                id: truth["calendars"][2]["id"].as_str().unwrap().into(),
                name: Some("Renamed".into()),
                color: Some("lightRed".into()),
            },
            Mutation::DeleteCalendar { mailbox: mb.clone(), id: tid.clone() },
        ])
        .unwrap();
    let own = res[0]["id"].as_str().unwrap().to_string();
    let shared = res[1]["id"].as_str().unwrap().to_string();

    let listed = env.get_json(&env.graph(&format!("/users/{mb}/calendars")), &[]).await;
    let listed = listed["value"].as_array().unwrap();
    let t = env.truth_mailbox(&mb);
    assert_eq!(listed, t["calendars"].as_array().unwrap());
    assert!(!listed.iter().any(|c| c["id"] == tid.as_str()), "deleted calendar left the listing");
    assert_eq!(listed.last().unwrap()["id"], shared.as_str(), "creation order");
    let by_id = |id: &str| listed.iter().find(|c| c["id"] == id).unwrap().clone();
    assert_eq!(by_id(&own)["name"], "Side project");
    assert_eq!(by_id(&own)["canEdit"], true);
    let sh = by_id(&shared);
    assert_eq!(sh["canEdit"], false);
    assert_eq!(sh["isRemovable"], true);
    let other_user = env.get_json(&env.graph(&format!("/users/{other}")), &[]).await;
    assert_eq!(sh["owner"]["address"], other_user["mail"]);
    let renamed = by_id(truth["calendars"][2]["id"].as_str().unwrap());
    assert_eq!(renamed["name"], "Renamed");
    assert_eq!(renamed["color"], "lightRed");
    assert!(renamed["hexColor"].as_str().unwrap().starts_with('#'));
    assert_ne!(renamed["changeKey"], truth["calendars"][2]["changeKey"]);
    assert!(!t["events"].as_array().unwrap().iter().any(|e| e["calendarId"] == tid.as_str()), "its events are gone");

    // The deleted calendar's delta: fresh, by deltaLink and by nextLink, all 404.
    // The token alone names the calendar: on the default calendar's path it still answers 404.
    let token = delta.split("$deltatoken=").nth(1).unwrap();
    let elsewhere = env.graph(&format!("/users/{mb}/calendarView/delta?$deltatoken={token}"));
    for u in [&url, &delta, &next, &elsewhere] {
        let (status, v) = status_code(&env, u).await;
        assert_eq!(status, 404, "{u}");
        assert_eq!(v["error"]["code"], "ErrorItemNotFound");
    }
    let (status, _) = status_code(&env, &env.graph(&format!("/users/{mb}/calendars/{}", urlencode(&tid)))).await;
    assert_eq!(status, 404);
    // The new calendar has an (empty) delta.
    let (items, _, _) = env.round(&cal_delta(&env, &mb, &own, &q), &[IMM]).await;
    assert!(items.is_empty());

    // The default calendar cannot be deleted; unknown calendars are refused.
    let def = t["calendars"][0]["id"].as_str().unwrap().to_string();
    assert!(env.sim.mutate(vec![Mutation::DeleteCalendar { mailbox: mb.clone(), id: def }]).is_err());
    assert!(env.sim.mutate(vec![Mutation::DeleteCalendar { mailbox: mb.clone(), id: tid.clone() }]).is_err());
    assert!(env.sim.mutate(vec![Mutation::CreateCalendar { mailbox: mb.clone(), name: "x".into(), shared_from: Some("nobody@example.com".into()) }]).is_err());

    // Mutations travel as JSON with "op" in snake_case.
    let m: Mutation = serde_json::from_str(&format!(r#"{{"op":"move_event_to_calendar","mailbox":"{mb}","id":"x","to_calendar":"y"}}"#)).unwrap();
    assert!(matches!(m, Mutation::MoveEventToCalendar { .. }));
    let m: Mutation = serde_json::from_str(&format!(r#"{{"op":"create_calendar","mailbox":"{mb}","name":"n"}}"#)).unwrap();
    assert_eq!(m, Mutation::CreateCalendar { mailbox: mb.clone(), name: "n".into(), shared_from: None });
}

/// Every form of the delta function Graph accepts — `delta`, `delta()`, `microsoft.graph.delta`,
/// `microsoft.graph.delta()` — on every delta route (folders; one folder's messages by well-known
/// name, id and OData key; calendarView of the default calendar by both paths and of one calendar
/// by id and key) serves the same round as plain `delta`, and its nextLinks and deltaLink page on.
/// Microsoft's SDKs send `delta()`: issue 17 found msgraph-sdk answered 404 for
/// `mailFolders/delta()`. Anything else in that segment is no route (404).
#[tokio::test]
async fn delta_function_call_forms() {
    let env = Env::new(world()).await;
    let mb = env.mailbox();
    let (q, _, _) = window(60, 200);
    let truth = env.truth_mailbox(&mb);
    let inbox = truth["mail_folders"].as_array().unwrap().iter().find(|f| f["displayName"] == "Inbox").unwrap()["id"].as_str().unwrap().to_string();
    let inbox = urlencode(&inbox);
    let def = urlencode(truth["calendars"][0]["id"].as_str().unwrap());
    let team = urlencode(truth["calendars"][1]["id"].as_str().unwrap());
    let routes = [
        ("mailFolders/".to_string(), String::new()),
        ("mailFolders/inbox/messages/".to_string(), String::new()),
        (format!("mailFolders/{inbox}/messages/"), String::new()),
        (format!("mailFolders('{inbox}')/messages/"), String::new()),
        ("calendarView/".to_string(), format!("?{q}")),
        ("calendar/calendarView/".to_string(), format!("?{q}")),
        (format!("calendars/{def}/calendarView/"), format!("?{q}")),
        (format!("calendars('{team}')/calendarView/"), format!("?{q}")),
    ];
    let forms = ["delta", "delta()", "microsoft.graph.delta", "microsoft.graph.delta()", "Microsoft.Graph.Delta()"];
    for (prefix, query) in &routes {
        let (want, _, _) = env.round(&env.graph(&format!("/users/{mb}/{prefix}delta{query}")), &[IMM, "odata.maxpagesize=100"]).await;
        assert!(!want.is_empty(), "{prefix}");
        for form in forms {
            let url = env.graph(&format!("/users/{mb}/{prefix}{form}{query}"));
            // Pages of 3: the round follows nextLinks, then its deltaLink answers an empty round.
            let (got, delta, pages) = env.round(&url, &[IMM, "odata.maxpagesize=3"]).await;
            assert!(pages > 1, "{url}");
            assert_eq!(ids(&got), ids(&want), "{url}");
            let (again, _, _) = env.round(&delta, &[IMM]).await;
            assert!(again.is_empty(), "{url} then {delta}: {again:?}");
        }
    }
    for bad in ["deltas", "delta(", "delta(x)", "graph.delta()", "microsoft.graph.delta()()"] {
        let (status, _) = status_code(&env, &env.graph(&format!("/users/{mb}/mailFolders/{bad}"))).await;
        assert_eq!(status, 404, "{bad}");
    }
}
