//! The lazily generated bulk folder: delta rounds, mutations, expiry, truth and determinism.

use std::collections::{BTreeMap, BTreeSet};

use outlake_simulator::{Mutation, SimConfig};
use serde_json::Value;

use crate::{Env, IMM, small};

const BULK: usize = 2_500;
const PREFER: [&str; 2] = ["odata.maxpagesize=1000", IMM];

fn bulk_cfg() -> SimConfig {
    SimConfig { bulk_messages: BULK, ..small() }
}

type Keys = BTreeSet<(String, String)>;

/// Folder ids of the mailbox (one full mailFolders delta round), with their totalItemCount.
async fn folders(env: &Env, mb: &str) -> BTreeMap<String, i64> {
    let (items, _, _) = env.round(&env.graph(&format!("/users/{mb}/mailFolders/delta")), &[]).await;
    items.iter().map(|f| (f["id"].as_str().unwrap().to_string(), f["totalItemCount"].as_i64().unwrap())).collect()
}

fn messages_url(env: &Env, mb: &str, folder: &str) -> String {
    env.graph(&format!("/users/{mb}/mailFolders/{folder}/messages/delta"))
}

/// Applies a round's items to a replica of (folder, id).
fn apply(replica: &mut Keys, folder: &str, items: &[Value]) {
    for it in items {
        let id = it["id"].as_str().unwrap().to_string();
        if it.get("@removed").is_some() {
            replica.remove(&(folder.to_string(), id));
        } else {
            assert_eq!(it["parentFolderId"], folder);
            replica.insert((folder.to_string(), id));
        }
    }
}

/// A full round of every folder: the replica and each folder's deltaLink.
async fn backfill(env: &Env, mb: &str) -> (Keys, BTreeMap<String, String>) {
    let mut replica = Keys::new();
    let mut links = BTreeMap::new();
    for f in folders(env, mb).await.keys() {
        let (items, delta, _) = env.round(&messages_url(env, mb, f), &PREFER).await;
        apply(&mut replica, f, &items);
        links.insert(f.clone(), delta);
    }
    (replica, links)
}

#[tokio::test]
async fn a_full_round_returns_exactly_the_message_ids() {
    let env = Env::new(bulk_cfg()).await;
    let mb = env.mailbox();
    let ids = env.sim.message_ids(&mb);
    assert_eq!(ids.len(), small().messages_per_mailbox + BULK);
    let (replica, _) = backfill(&env, &mb).await;
    assert_eq!(replica, ids);

    // The Inbox: every page full but the last; counts include the bulk messages.
    let inbox = env.get_json(&env.graph(&format!("/users/{mb}/mailFolders/inbox")), &[]).await;
    let inbox_id = inbox["id"].as_str().unwrap();
    let in_inbox = ids.iter().filter(|(f, _)| f == inbox_id).count();
    assert!(in_inbox > BULK);
    assert_eq!(inbox["totalItemCount"].as_i64().unwrap() as usize, in_inbox);
    let (items, _, pages) = env.round(&messages_url(&env, &mb, "inbox"), &PREFER).await;
    assert_eq!(items.len(), in_inbox);
    assert_eq!(pages, in_inbox.div_ceil(1000));
    let unread = items.iter().filter(|m| m["isRead"] == false).count();
    assert_eq!(inbox["unreadItemCount"].as_i64().unwrap() as usize, unread);
    let first = env.get_json(&messages_url(&env, &mb, "inbox"), &["odata.maxpagesize=333", IMM]).await;
    assert_eq!(first["value"].as_array().unwrap().len(), 333);

    // $top caps the round across stored and generated messages.
    let (items, _, _) = env.round(&format!("{}?$top=1500", messages_url(&env, &mb, "inbox")), &PREFER).await;
    assert_eq!(items.len(), 1500);

    // Generated messages have the stored ones' shape, property for property as the truth has them.
    let truth = env.truth_mailbox(&mb);
    let truth_keys: Keys = truth["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["parentFolderId"].as_str().unwrap().to_string(), m["id"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(truth_keys, ids);
    let (items, _, _) = env.round(&messages_url(&env, &mb, "inbox"), &PREFER).await;
    let by_id: BTreeMap<&str, &Value> = truth["messages"].as_array().unwrap().iter().map(|m| (m["id"].as_str().unwrap(), m)).collect();
    for it in &items {
        assert_eq!(&it, by_id.get(it["id"].as_str().unwrap()).unwrap());
    }
    let all = truth["messages"].as_array().unwrap();
    let stored: BTreeSet<&str> = all[..all.len() - BULK].iter().map(|m| m["id"].as_str().unwrap()).collect();
    let generated = items.iter().find(|m| !stored.contains(m["id"].as_str().unwrap())).unwrap();
    let shape = |m: &Value| m.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(shape(generated), shape(&items[0]));
    assert_eq!(generated["@odata.etag"], format!("W/\"{}\"", generated["changeKey"].as_str().unwrap()));

    // Other mailboxes have no bulk folder.
    let other = env.sim.mailbox_ids()[1].clone();
    assert_eq!(env.sim.message_ids(&other).len(), small().messages_per_mailbox);
}

#[tokio::test]
async fn incremental_rounds_bring_a_replica_to_the_message_ids() {
    let env = Env::new(bulk_cfg()).await;
    let mb = env.mailbox();
    let (mut replica, links) = backfill(&env, &mb).await;
    let before = env.sim.message_ids(&mb);
    assert_eq!(replica, before);

    // Random changes pick generated messages too.
    let stored: BTreeSet<String> = {
        let plain = Env::new(small()).await;
        plain.sim.message_ids(&mb).into_iter().map(|(_, id)| id).collect()
    };
    let changes = env.sim.random_changes(7, 20);
    let touched_bulk = changes
        .iter()
        .filter(|c| match c {
            Mutation::UpdateMessage { mailbox, id } | Mutation::DeleteMessage { mailbox, id } | Mutation::MoveMessage { mailbox, id, .. } => {
                *mailbox == mb && !stored.contains(id)
            }
            _ => false,
        })
        .count();
    assert!(touched_bulk >= 20, "{touched_bulk} of the message changes name generated messages");
    env.sim.mutate(changes).unwrap();

    let after = env.sim.message_ids(&mb);
    assert_ne!(after, before);
    let now = folders(&env, &mb).await;
    for (f, link) in &links {
        if !now.contains_key(f) {
            replica.retain(|(g, _)| g != f);
            continue;
        }
        let (items, _, _) = env.round(link, &PREFER).await;
        assert!(items.len() < 200, "an incremental round reports changes only: {} items", items.len());
        apply(&mut replica, f, &items);
    }
    for f in now.keys().filter(|f| !links.contains_key(*f)) {
        let (items, _, _) = env.round(&messages_url(&env, &mb, f), &PREFER).await;
        apply(&mut replica, f, &items);
    }
    assert_eq!(replica, after);
    for (f, total) in &now {
        assert_eq!(*total as usize, after.iter().filter(|(g, _)| g == f).count(), "totalItemCount of {f}");
    }
}

#[tokio::test]
async fn explicit_mutations_on_generated_messages_during_a_round() {
    // Enough generations that the first round's deltaLink outlives the second round's pages.
    let env = Env::new(SimConfig { sync_generations: 10, ..bulk_cfg() }).await;
    let mb = env.mailbox();
    let url = messages_url(&env, &mb, "inbox");
    let (items, delta, _) = env.round(&url, &PREFER).await;
    let n = items.len();
    let id = |i: usize| items[i]["id"].as_str().unwrap().to_string();
    let (updated, deleted, moved) = (id(n - 10), id(n - 20), id(n - 30));
    let old = items[n - 10].clone();

    // Start a round, change three generated messages ahead of it, finish it.
    let first = env.get_json(&url, &PREFER).await;
    env.sim
        .mutate(vec![
            Mutation::UpdateMessage { mailbox: mb.clone(), id: updated.clone() },
            Mutation::DeleteMessage { mailbox: mb.clone(), id: deleted.clone() },
            Mutation::MoveMessage { mailbox: mb.clone(), id: moved.clone(), to_folder: "archive".into() },
        ])
        .unwrap();
    let (rest, _, _) = env.round(first["@odata.nextLink"].as_str().unwrap(), &PREFER).await;
    let mut seen: Vec<Value> = first["value"].as_array().unwrap().clone();
    seen.extend(rest);
    let seen_ids: Vec<&str> = seen.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(seen_ids.len(), n - 2, "the deleted and the moved message are skipped");
    assert_eq!(seen_ids.iter().collect::<BTreeSet<_>>().len(), n - 2, "no duplicates");
    let now = seen.iter().find(|m| m["id"] == updated.as_str()).unwrap();
    assert_ne!(now["changeKey"], old["changeKey"], "served in its changed state");
    assert_ne!(now["isRead"], old["isRead"]);
    assert_eq!(now["subject"], old["subject"]);

    // The incremental round: one update, two removals.
    let (inc, _, _) = env.round(&delta, &PREFER).await;
    let mut got: Vec<(String, bool)> = inc.iter().map(|m| (m["id"].as_str().unwrap().to_string(), m.get("@removed").is_some())).collect();
    got.sort();
    let mut want = vec![(updated.clone(), false), (deleted.clone(), true), (moved.clone(), true)];
    want.sort();
    assert_eq!(got, want);
    let archive = env.get_json(&env.graph(&format!("/users/{mb}/mailFolders/archive")), &[]).await["id"].as_str().unwrap().to_string();
    assert!(env.sim.message_ids(&mb).contains(&(archive, moved.clone())));

    // A deleted generated message cannot be changed again; an unknown id is refused.
    assert!(env.sim.mutate(vec![Mutation::UpdateMessage { mailbox: mb.clone(), id: deleted }]).is_err());
    // Moving it back: present again, under the same immutable id.
    env.sim.mutate(vec![Mutation::MoveMessage { mailbox: mb.clone(), id: moved.clone(), to_folder: "inbox".into() }]).unwrap();
    let (items, _, _) = env.round(&url, &PREFER).await;
    assert_eq!(items.iter().filter(|m| m["id"] == moved.as_str()).count(), 1);
    assert_eq!(items.len(), n - 1);
}

#[tokio::test]
async fn expired_sync_state_answers_410() {
    let env = Env::new(bulk_cfg()).await;
    let mb = env.mailbox();
    let url = messages_url(&env, &mb, "inbox");
    let (_, delta, _) = env.round(&url, &PREFER).await;
    let first = env.get_json(&url, &PREFER).await;
    let next = first["@odata.nextLink"].as_str().unwrap().to_string();
    env.sim.expire_sync_state(&mb);
    for link in [&delta, &next] {
        let r = env.get(link, &PREFER).await;
        assert_eq!(r.status(), 410);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "SyncStateNotFound");
    }
    let (items, _, _) = env.round(&url, &PREFER).await;
    assert!(items.len() > BULK, "a fresh round serves the whole folder again");
}

#[tokio::test]
async fn generation_is_deterministic() {
    let a = Env::new(bulk_cfg()).await;
    let b = Env::new(bulk_cfg()).await;
    let mb = a.mailbox();
    assert_eq!(a.sim.message_ids(&mb), b.sim.message_ids(&mb));
    assert_eq!(a.truth_mailbox(&mb)["messages"], b.truth_mailbox(&mb)["messages"]);
    let url = |e: &Env| messages_url(e, &mb, "inbox");
    let (ia, _, _) = a.round(&url(&a), &PREFER).await;
    let (ib, _, _) = b.round(&url(&b), &PREFER).await;
    assert_eq!(ia, ib);

    // The stored world is that of the same seed without a bulk folder; another seed differs.
    let plain = Env::new(small()).await.sim.message_ids(&mb);
    let with = a.sim.message_ids(&mb);
    assert!(plain.is_subset(&with));
    assert_eq!(with.len() - plain.len(), BULK);
    let other = Env::new(SimConfig { seed: 43, ..bulk_cfg() }).await;
    let other_ids: BTreeSet<String> = other.sim.message_ids(&other.mailbox()).into_iter().map(|(_, id)| id).collect();
    assert!(with.iter().all(|(_, id)| !other_ids.contains(id)));
}

/// A full round over a million generated messages, as one client pages it.
/// `cargo test -p outlake-simulator --release --test it bulk::million -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing; run in release"]
async fn million_message_round() {
    let n = std::env::var("BULK_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let t = std::time::Instant::now();
    let env = Env::new(SimConfig { bulk_messages: n, page_cap: 1000, ..small() }).await;
    println!("start: {:?}", t.elapsed());
    let mb = env.mailbox();
    let t = std::time::Instant::now();
    let mut next = messages_url(&env, &mb, "inbox");
    let (mut items, mut bytes) = (0usize, 0usize);
    loop {
        let body = env.get(&next, &PREFER).await.bytes().await.unwrap();
        bytes += body.len();
        let v: Value = serde_json::from_slice(&body).unwrap();
        items += v["value"].as_array().unwrap().len();
        match v["@odata.nextLink"].as_str() {
            Some(l) => next = l.to_string(),
            None => break,
        }
    }
    let took = t.elapsed();
    println!("{items} messages, {} MB in {took:?}: {:?} per message (server and client)", bytes >> 20, took / items as u32);
    let t = std::time::Instant::now();
    let ids = env.sim.message_ids(&mb);
    println!("message_ids: {} in {:?}", ids.len(), t.elapsed());
    let inbox = env.get_json(&env.graph(&format!("/users/{mb}/mailFolders/inbox")), &[]).await;
    assert_eq!(items, ids.iter().filter(|(f, _)| inbox["id"] == f.as_str()).count());
    assert_eq!(items as i64, inbox["totalItemCount"].as_i64().unwrap());
}
