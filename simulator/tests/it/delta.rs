//! Delta paging, incremental rounds, generations, moves, replays, calendar windows.

use outlake_simulator::{Mutation, SimConfig};
use serde_json::Value;

use crate::{Env, IMM, small};

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|v| v["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn paging_default_maxpagesize_and_cap() {
    let env = Env::new(SimConfig { messages_per_mailbox: 150, page_cap: 25, ..small() }).await;
    let mb = env.mailbox();
    let url = env.graph(&format!("/users/{mb}/mailFolders/inbox/messages/delta"));
    let truth = env.truth_mailbox(&mb);
    let inbox = env.get_json(&env.graph(&format!("/users/{mb}/mailFolders/inbox")), &[]).await;
    let inbox_id = inbox["id"].as_str().unwrap();
    let expected = truth["messages"].as_array().unwrap().iter().filter(|m| m["parentFolderId"] == inbox_id).count();
    assert!(expected > 20, "{expected}");

    // Default page size 10, no Preference-Applied maxpagesize.
    let r = env.get(&url, &[IMM]).await;
    let applied = r.headers().get("preference-applied").map(|h| h.to_str().unwrap().to_string()).unwrap_or_default();
    assert!(!applied.contains("maxpagesize"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["value"].as_array().unwrap().len(), 10);
    assert!(v["@odata.nextLink"].as_str().unwrap().starts_with(&env.sim.url()));
    assert!(v.get("@odata.deltaLink").is_none());

    // maxpagesize within the cap, combined with IdType in one header.
    let r = env.get(&url, &["odata.maxpagesize=7, IdType=\"ImmutableId\""]).await;
    assert!(r.headers()["preference-applied"].to_str().unwrap().contains("odata.maxpagesize=7"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["value"].as_array().unwrap().len(), 7);

    // Above the cap: capped and echoed.
    let r = env.get(&url, &["odata.maxpagesize=500", IMM]).await;
    assert!(r.headers()["preference-applied"].to_str().unwrap().contains("odata.maxpagesize=25"));
    let (items, delta, pages) = env.round(&url, &["odata.maxpagesize=500", IMM]).await;
    assert_eq!(items.len(), expected);
    assert_eq!(pages, expected.div_ceil(25));
    assert!(delta.contains("$deltatoken="));
    // Full round equals the truth, property for property.
    for it in &items {
        let t = truth["messages"].as_array().unwrap().iter().find(|m| m["id"] == it["id"]).unwrap();
        assert_eq!(it, t);
    }
    let m = &items[0];
    assert!(m["@odata.etag"].as_str().unwrap().starts_with("W/\""));
    assert!(m["receivedDateTime"].as_str().unwrap().ends_with('Z') && m["receivedDateTime"].as_str().unwrap().len() == 20);
    assert!(m["bodyPreview"].as_str().unwrap().chars().count() <= 255);
    assert_eq!(m["body"]["contentType"], "html");

    // $select: only the selected props + id, @odata.type, @odata.etag.
    let v = env.get_json(&format!("{url}?$select=subject,isRead"), &[IMM]).await;
    let first = v["value"][0].as_object().unwrap();
    let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["@odata.etag", "@odata.type", "id", "isRead", "subject"]);

    // $top caps the whole round.
    let (items, _, _) = env.round(&format!("{url}?$top=12"), &["odata.maxpagesize=5"]).await;
    assert_eq!(items.len(), 12);

    // /users paging.
    let v = env.get_json(&env.graph("/users?$top=2&$select=id,userPrincipalName"), &[]).await;
    assert_eq!(v["value"].as_array().unwrap().len(), 2);
    assert!(v["value"][0].get("mail").is_none());
    let next = v["@odata.nextLink"].as_str().unwrap();
    let v2 = env.get_json(next, &[]).await;
    assert_eq!(v2["value"].as_array().unwrap().len(), 1);
    assert_eq!(env.get(&env.graph("/users?$top=1000"), &[]).await.status(), 400);
}

#[tokio::test]
async fn incremental_round_after_mutations() {
    let env = Env::new(small()).await;
    let mb = env.mailbox();
    let url = env.graph(&format!("/users/{mb}/mailFolders/inbox/messages/delta"));
    let (items, delta, _) = env.round(&url, &["odata.maxpagesize=50", IMM]).await;
    let before = ids(&items);
    let (f_items, f_delta, _) = env.round(&env.graph(&format!("/users/{mb}/mailFolders/delta")), &[]).await;
    assert!(f_items.len() >= 11, "nested tree flattened: {}", f_items.len());
    let archive = env.get_json(&env.graph(&format!("/users/{mb}/mailFolders/archive")), &[]).await["id"].as_str().unwrap().to_string();
    let (_, a_delta, _) = env.round(&env.graph(&format!("/users/{mb}/mailFolders/archive/messages/delta")), &[IMM]).await;

    let res = env
        .sim
        .mutate(vec![
            Mutation::CreateMessage { mailbox: mb.clone(), folder: "inbox".into(), subject: Some("hello".into()) },
            Mutation::UpdateMessage { mailbox: mb.clone(), id: before[0].clone() },
            Mutation::DeleteMessage { mailbox: mb.clone(), id: before[1].clone() },
            Mutation::MoveMessage { mailbox: mb.clone(), id: before[2].clone(), to_folder: archive.clone() },
        ])
        .unwrap();
    let created = res[0]["id"].as_str().unwrap().to_string();

    let (items, _, _) = env.round(&delta, &["odata.maxpagesize=50", IMM]).await;
    assert_eq!(items.len(), 4, "{items:#?}");
    let by_id = |id: &str| items.iter().find(|v| v["id"] == id).unwrap().clone();
    assert_eq!(by_id(&created)["subject"], "hello");
    let updated = by_id(&before[0]);
    let old = env.truth_mailbox(&mb);
    let t = old["messages"].as_array().unwrap().iter().find(|m| m["id"] == before[0]).unwrap();
    assert_eq!(&updated, t, "updated item comes back in full");
    assert_eq!(by_id(&before[1])["@removed"]["reason"], "deleted");
    assert_eq!(by_id(&before[2])["@removed"]["reason"], "deleted");
    assert_eq!(by_id(&before[1])["@odata.type"], "#microsoft.graph.message");

    // The move shows as an add in the destination, same immutable id.
    let (items, _, _) = env.round(&a_delta, &[IMM]).await;
    assert_eq!(ids(&items), vec![before[2].clone()]);
    assert_eq!(items[0]["parentFolderId"], archive.as_str());

    // Folder tree: counts changed, so inbox and archive are reported.
    let (f2, _, _) = env.round(&f_delta, &[]).await;
    assert!(f2.iter().any(|f| f["id"] == archive.as_str()));
    let _ = f_items;
}

#[tokio::test]
async fn moves_without_immutable_ids_change_the_id() {
    let env = Env::new(small()).await;
    let mb = env.mailbox();
    let inbox_url = env.graph(&format!("/users/{mb}/mailFolders/inbox/messages/delta"));
    let arch_url = env.graph(&format!("/users/{mb}/mailFolders/archive/messages/delta"));
    let (imm_items, _, _) = env.round(&inbox_url, &["odata.maxpagesize=100", IMM]).await;
    let (reg_items, reg_delta, _) = env.round(&inbox_url, &["odata.maxpagesize=100"]).await;
    let (_, arch_delta, _) = env.round(&arch_url, &[]).await;
    let subject = imm_items[0]["subject"].clone();
    let imm = imm_items[0]["id"].as_str().unwrap().to_string();
    let reg = reg_items.iter().find(|m| m["internetMessageId"] == imm_items[0]["internetMessageId"]).unwrap()["id"].as_str().unwrap().to_string();
    assert_ne!(imm, reg);
    env.sim.mutate(vec![Mutation::MoveMessage { mailbox: mb.clone(), id: imm.clone(), to_folder: "archive".into() }]).unwrap();
    let (items, _, _) = env.round(&reg_delta, &[]).await;
    assert_eq!(ids(&items), vec![reg.clone()]);
    assert!(items[0].get("@removed").is_some());
    let (items, _, _) = env.round(&arch_delta, &[]).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["subject"], subject);
    assert_ne!(items[0]["id"], reg.as_str(), "regular id changes on move");
    assert_ne!(items[0]["id"], imm.as_str());

    // Toggling the ImmutableId preference on an existing token.
    let (_, d, _) = env.round(&inbox_url, &[]).await;
    let r = env.get(&d, &[IMM]).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "SyncStateInvalid");
}

#[tokio::test]
async fn generations_expire_old_tokens() {
    let env = Env::new(small()).await;
    let mb = env.mailbox();
    let url = env.graph(&format!("/users/{mb}/mailFolders/drafts/messages/delta"));
    let prefer = ["odata.maxpagesize=1000"];
    let (_, d0, pages) = env.round(&url, &prefer).await;
    assert_eq!(pages, 1);
    // Three newer rounds push d0 out of the kept generations.
    let mut d = d0.clone();
    for _ in 0..2 {
        d = env.round(&d, &prefer).await.1;
    }
    assert_eq!(env.get(&d0, &prefer).await.status(), 200, "still within 3 generations");
    d = env.round(&d, &prefer).await.1;
    let _ = env.round(&d, &prefer).await.1;
    let r = env.get(&d0, &prefer).await;
    assert_eq!(r.status(), 410);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "SyncStateNotFound");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.starts_with("The sync state generation is not found; generation="), "{msg}");
    assert!(msg.contains("[highest="));

    // Sequential paging of one long round never invalidates itself.
    let inbox = env.graph(&format!("/users/{mb}/mailFolders/inbox/messages/delta"));
    let (items, _, pages) = env.round(&inbox, &["odata.maxpagesize=2"]).await;
    assert!(pages > 5 && !items.is_empty());

    // Admin expiry, mid-round.
    let v = env.get_json(&inbox, &["odata.maxpagesize=2"]).await;
    let next = v["@odata.nextLink"].as_str().unwrap().to_string();
    env.sim.expire_sync_state(&mb);
    let r = env.get(&next, &["odata.maxpagesize=2"]).await;
    assert_eq!(r.status(), 410);
    // A fresh round works again.
    assert_eq!(env.get(&inbox, &[]).await.status(), 200);
}

#[tokio::test]
async fn replays_send_items_twice() {
    let env = Env::new(SimConfig { replay_rate: 0.5, ..small() }).await;
    let mb = env.mailbox();
    let (items, _, _) = env.round(&env.graph(&format!("/users/{mb}/mailFolders/inbox/messages/delta")), &["odata.maxpagesize=7", IMM]).await;
    let all = ids(&items);
    let mut uniq = all.clone();
    uniq.sort();
    uniq.dedup();
    assert!(all.len() > uniq.len(), "some replays");
    let t = env.truth_mailbox(&mb);
    let inbox = env.get_json(&env.graph(&format!("/users/{mb}/mailFolders/inbox")), &[]).await;
    let expected = t["messages"].as_array().unwrap().iter().filter(|m| m["parentFolderId"] == inbox["id"]).count();
    assert_eq!(uniq.len(), expected);
}

#[tokio::test]
async fn folder_hard_delete_and_calendar() {
    let env = Env::new(small()).await;
    let mb = env.mailbox();
    let (folders, f_delta, _) = env.round(&env.graph(&format!("/users/{mb}/mailFolders/delta")), &[]).await;
    let travel = folders.iter().find(|f| f["displayName"] == "Travel").unwrap()["id"].as_str().unwrap().to_string();
    env.sim.mutate(vec![Mutation::CreateMessage { mailbox: mb.clone(), folder: travel.clone(), subject: None }]).unwrap();
    let t_url = env.graph(&format!("/users/{mb}/mailFolders/{}/messages/delta", urlencode(&travel)));
    let (items, t_delta, _) = env.round(&t_url, &[IMM]).await;
    assert!(!items.is_empty());
    env.sim.mutate(vec![Mutation::DeleteFolder { mailbox: mb.clone(), id: travel.clone() }]).unwrap();
    let r = env.get(&t_delta, &[IMM]).await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "ErrorItemNotFound");
    let (f2, _, _) = env.round(&f_delta, &[]).await;
    assert!(f2.iter().any(|f| f["id"] == travel.as_str() && f["@removed"]["reason"] == "deleted"));
    assert!(!env.truth_mailbox(&mb)["messages"].as_array().unwrap().iter().any(|m| m["parentFolderId"] == travel.as_str()));

    // Calendar: window fixed by the first call, no series masters, truth matches.
    let now = chrono::Utc::now();
    let s = (now - chrono::Duration::days(60)).format("%Y-%m-%dT00:00:00Z").to_string();
    let e = (now + chrono::Duration::days(200)).format("%Y-%m-%dT00:00:00Z").to_string();
    let cal = env.graph(&format!("/users/{mb}/calendarView/delta?startDateTime={s}&endDateTime={e}"));
    let first = env.get_json(&cal, &[IMM]).await;
    assert!(first["value"].as_array().unwrap().is_empty() && first["@odata.nextLink"].is_string(), "empty first page");
    // Timezone preference rewrites start/end of timed events.
    let (pst, _, _) = env.round(&cal, &[IMM, "outlook.timezone=\"Pacific Standard Time\""]).await;
    let (events, c_delta, _) = env.round(&cal, &[IMM]).await;
    let truth = env.truth_mailbox(&mb);
    // calendarView/delta serves the default calendar's instances in the window.
    let default_cal = truth["calendars"][0]["id"].clone();
    assert_eq!(truth["calendars"][0]["isDefaultCalendar"], true);
    let (ws, we) = (crate::calendars::instant(&s), crate::calendars::instant(&e));
    let expected: Vec<Value> = truth["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["calendarId"] == default_cal && crate::calendars::overlaps(t, ws, we))
        .map(crate::calendars::served)
        .collect();
    assert_eq!(events.len(), expected.len());
    for ev in &events {
        assert_ne!(ev["type"], "seriesMaster");
        let t = expected.iter().find(|x| x["id"] == ev["id"]).unwrap();
        assert_eq!(ev, t);
        let created = ev["createdDateTime"].as_str().unwrap();
        assert_eq!(created.len(), 28, "{created}");
        if ev["isAllDay"] == true {
            assert!(ev["start"]["dateTime"].as_str().unwrap().ends_with("T00:00:00.0000000"));
            assert_eq!(ev["start"]["timeZone"], ev["originalStartTimeZone"]);
        } else {
            assert_eq!(ev["start"]["timeZone"], "UTC");
        }
    }
    assert!(events.iter().any(|e| e["type"] == "occurrence"));
    assert!(events.iter().any(|e| e["type"] == "exception"));

    let timed = pst.iter().find(|e| e["isAllDay"] == false).unwrap();
    assert_eq!(timed["start"]["timeZone"], "Pacific Standard Time");
    let utc = events.iter().find(|e| e["id"] == timed["id"]).unwrap();
    assert_ne!(timed["start"]["dateTime"], utc["start"]["dateTime"]);

    // Changes: update, cancel, delete, move out of the window.
    let timed_ids: Vec<String> = events.iter().map(|e| e["id"].as_str().unwrap().to_string()).take(4).collect();
    env.sim
        .mutate(vec![
            Mutation::UpdateEvent { mailbox: mb.clone(), id: timed_ids[0].clone() },
            Mutation::CancelEvent { mailbox: mb.clone(), id: timed_ids[1].clone() },
            Mutation::DeleteEvent { mailbox: mb.clone(), id: timed_ids[2].clone() },
            Mutation::MoveEventOutOfWindow { mailbox: mb.clone(), id: timed_ids[3].clone() },
        ])
        .unwrap();
    let (ch, _, _) = env.round(&c_delta, &[IMM]).await;
    assert_eq!(ch.len(), 4);
    let get = |id: &str| ch.iter().find(|e| e["id"] == id).unwrap();
    assert!(get(&timed_ids[0])["subject"].as_str().unwrap().ends_with("(updated)"));
    assert_eq!(get(&timed_ids[1])["isCancelled"], true);
    assert_eq!(get(&timed_ids[2])["@removed"]["reason"], "deleted");
    assert_eq!(get(&timed_ids[3])["@removed"]["reason"], "deleted");
    assert_eq!(get(&timed_ids[3])["@odata.type"], "#microsoft.graph.event");

    // Window too long, $select refused.
    let r = env.get(&env.graph(&format!("/users/{mb}/calendarView/delta?startDateTime=2020-01-01T00:00:00Z&endDateTime=2026-01-01T00:00:00Z")), &[]).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "ErrorInvalidRequest");
    assert!(v["error"]["message"].as_str().unwrap().contains("Maximum number of days: 1825"));
    let r = env.get(&format!("{cal}&$select=subject"), &[]).await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn random_changes_keep_delta_and_truth_in_step() {
    let env = Env::new(small()).await;
    let mb = env.mailbox();
    let (folders, _, _) = env.round(&env.graph(&format!("/users/{mb}/mailFolders/delta")), &[]).await;
    let mut links = Vec::new();
    // Keyed by (folder, id): a move shows as a removal in one folder and an add in another.
    let mut state: std::collections::BTreeMap<(String, String), Value> = Default::default();
    for f in &folders {
        let fid = f["id"].as_str().unwrap().to_string();
        let u = env.graph(&format!("/users/{mb}/mailFolders/{}/messages/delta", urlencode(f["id"].as_str().unwrap())));
        let (items, d, _) = env.round(&u, &["odata.maxpagesize=100", IMM]).await;
        for it in items {
            state.insert((fid.clone(), it["id"].as_str().unwrap().to_string()), it);
        }
        links.push((fid, d));
    }
    let muts = env.sim.random_changes(7, 3);
    assert!(muts.len() > 20);
    env.sim.mutate(muts).unwrap();
    for (fid, d) in &links {
        let r = env.get(d, &["odata.maxpagesize=100", IMM]).await;
        if r.status() == 404 {
            // Hard-deleted folder: drop its messages.
            continue;
        }
        let (items, _, _) = env.round(d, &["odata.maxpagesize=100", IMM]).await;
        for it in items {
            let key = (fid.clone(), it["id"].as_str().unwrap().to_string());
            if it.get("@removed").is_some() {
                state.remove(&key);
            } else {
                state.insert(key, it);
            }
        }
    }
    let truth = env.truth_mailbox(&mb);
    let live: std::collections::BTreeSet<String> = truth["mail_folders"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap().to_string()).collect();
    state.retain(|_, m| live.contains(m["parentFolderId"].as_str().unwrap()));
    let tm = truth["messages"].as_array().unwrap();
    // Messages in folders created after the first sync are not in `state`; compare the rest.
    let known: Vec<&Value> = tm.iter().filter(|m| folders.iter().any(|f| f["id"] == m["parentFolderId"])).collect();
    assert_eq!(state.len(), known.len());
    for m in known {
        let key = (m["parentFolderId"].as_str().unwrap().to_string(), m["id"].as_str().unwrap().to_string());
        assert_eq!(&state[&key], m);
    }
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
