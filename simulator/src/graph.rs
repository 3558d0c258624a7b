//! Microsoft Graph v1.0 routes: `/v1.0/users`, `/v1.0/users/{id|upn}`, `/v1.0/me`, and under
//! `/v1.0/users/{id|upn}/` or `/v1.0/me/`:
//! - `mailFolders/delta`, `mailFolders/{id|name}`, `mailFolders/{id|name}/messages/delta`;
//! - `calendars` (the listing: `$top`, default 10, capped at `page_cap`; `@odata.nextLink` with
//!   `$skip`), `calendars/{id}` and `calendar` (the default calendar);
//! - `calendarView/delta` and `calendar/calendarView/delta` (the default calendar),
//!   `calendars/{id}/calendarView/delta` (one calendar), all with `startDateTime`/`endDateTime`
//!   on the first request; links keep the path form they were asked by.
//!
//! Every `delta` segment may also be written `delta()` or `microsoft.graph.delta()`, as
//! Microsoft's SDKs do. Path segments match case-insensitively (ids excepted).
//!
//! Request pipeline: authenticate the bearer token (401 InvalidAuthenticationToken), resolve the
//! mailbox (`/me` needs a delegated token: 400 BadRequest otherwise; a user listed in
//! `bad_request_users` answers 400 BadRequest on `GET /users/{id|upn}`), check permissions (403),
//! throttle per (client_id, mailbox) (429), add the configured latency, maybe inject a fault
//! (never advancing sync state), then check the mailbox state (404 MailboxNotEnabledForRESTAPI,
//! 403 access policy, 403 ErrorQuotaExceeded on delta calls) and serve. Path segments may use the
//! OData key form `mailFolders('id')` or `calendars('id')`, which is how the simulator writes its
//! own links. A messages delta on a folder that no longer exists, and a calendarView delta or
//! `GET calendars/{id}` on a calendar that does not exist, answer 404 `ErrorItemNotFound`, for a
//! fresh request and for a token of a deleted folder or calendar alike. The calendar routes need
//! a `Calendars.*` permission (delegated access to another user's mailbox also
//! `Calendars.Read.Shared`); the listing and `GET` of one calendar are not delta calls (no 403
//! `ErrorQuotaExceeded`) but go through the same throttling and faults.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Value, json};

use crate::faults::Fault;
use crate::identity::Principal;
use crate::respond::Ctx;
use crate::state::{Shared, State};
use crate::stats::bump;
use crate::sync::{CollKind, DeltaError, DeltaRequest, Knobs, TokenParam};
use crate::throttle::Throttled;
use crate::wire;

#[derive(Debug, Clone)]
enum Target {
    Me,
    User(String),
}

/// Which calendar a calendarView delta names.
#[derive(Debug, Clone, PartialEq)]
enum CalSel {
    /// `calendarView/delta`.
    Default,
    /// `calendar/calendarView/delta`.
    DefaultNamed,
    /// `calendars/{id}/calendarView/delta`.
    Id(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Op {
    GetUser,
    GetFolder(String),
    FolderDelta,
    MessageDelta(String),
    ListCalendars,
    /// `calendars/{id}`, or `calendar` (`None`: the default calendar).
    GetCalendar(Option<String>),
    CalendarDelta(CalSel),
}

impl Op {
    fn kind(&self) -> &'static str {
        match self {
            Op::GetUser => "user",
            Op::GetFolder(_) => "mail_folder",
            Op::FolderDelta => "mail_folders_delta",
            Op::MessageDelta(_) => "messages_delta",
            Op::ListCalendars => "calendars",
            Op::GetCalendar(_) => "calendar",
            Op::CalendarDelta(_) => "calendar_view_delta",
        }
    }
    fn is_delta(&self) -> bool {
        matches!(self, Op::FolderDelta | Op::MessageDelta(_) | Op::CalendarDelta(_))
    }
    fn is_calendar(&self) -> bool {
        matches!(self, Op::ListCalendars | Op::GetCalendar(_) | Op::CalendarDelta(_))
    }
}

enum Route {
    ListUsers,
    Mailbox(Target, Op),
}

/// The decoded path segments, `name('key')` split into `name` and `key` (also used by the
/// request log, [`crate::requests`]).
pub(crate) fn segments(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for raw in path.split('/').filter(|s| !s.is_empty()) {
        let s = percent_decode(raw);
        if let (Some(open), true) = (s.find("('"), s.ends_with("')")) {
            out.push(s[..open].to_string());
            out.push(s[open + 2..s.len() - 2].to_string());
        } else {
            out.push(s);
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn route(segs: &[String]) -> Option<Route> {
    // Lower case, and the function-call forms of delta (`delta()`, `microsoft.graph.delta()`).
    let lower: Vec<String> = segs
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .map(|s| if matches!(s.as_str(), "delta()" | "microsoft.graph.delta" | "microsoft.graph.delta()") { "delta".to_string() } else { s })
        .collect();
    if lower.first().map(String::as_str) != Some("v1.0") {
        return None;
    }
    let (target, rest) = match lower.get(1).map(String::as_str) {
        Some("users") if segs.len() == 2 => return Some(Route::ListUsers),
        Some("users") => (Target::User(segs[2].clone()), 3),
        Some("me") => (Target::Me, 2),
        _ => return None,
    };
    let r: Vec<&str> = lower[rest..].iter().map(String::as_str).collect();
    let op = match r.as_slice() {
        [] => Op::GetUser,
        ["mailfolders", "delta"] => Op::FolderDelta,
        ["mailfolders", _] => Op::GetFolder(segs[rest + 1].clone()),
        ["mailfolders", _, "messages", "delta"] => Op::MessageDelta(segs[rest + 1].clone()),
        ["calendars"] => Op::ListCalendars,
        ["calendars", _] => Op::GetCalendar(Some(segs[rest + 1].clone())),
        ["calendar"] => Op::GetCalendar(None),
        ["calendarview", "delta"] => Op::CalendarDelta(CalSel::Default),
        ["calendar", "calendarview", "delta"] => Op::CalendarDelta(CalSel::DefaultNamed),
        ["calendars", _, "calendarview", "delta"] => Op::CalendarDelta(CalSel::Id(segs[rest + 1].clone())),
        _ => return None,
    };
    Some(Route::Mailbox(target, op))
}

/// Parsed `Prefer` headers (several headers and comma-separated lists both work).
#[derive(Default, Debug)]
struct Prefs {
    max_page_size: Option<usize>,
    immutable: bool,
    zone: Option<String>,
    text_body: bool,
}

fn prefs(headers: &HeaderMap) -> Prefs {
    let mut p = Prefs::default();
    for v in headers.get_all("prefer").iter().filter_map(|v| v.to_str().ok()) {
        for item in v.split(',') {
            let (k, val) = item.split_once('=').map(|(k, v)| (k.trim(), v.trim().trim_matches('"'))).unwrap_or((item.trim(), ""));
            match k.to_ascii_lowercase().as_str() {
                "odata.maxpagesize" => p.max_page_size = val.parse().ok(),
                "idtype" => p.immutable = val.eq_ignore_ascii_case("ImmutableId"),
                "outlook.timezone" => p.zone = Some(val.to_string()),
                "outlook.body-content-type" => p.text_body = val.eq_ignore_ascii_case("text"),
                _ => {}
            }
        }
    }
    p
}

fn has_any(have: &[String], want: &[&str]) -> bool {
    have.iter().any(|h| want.iter().any(|w| h.eq_ignore_ascii_case(w)))
}

/// Decrements the in-flight counts when the request is done.
struct InFlight {
    sh: Arc<Shared>,
    client: String,
    mailbox: String,
    kind: &'static str,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut st = self.sh.state.lock();
        st.throttle.release(&self.client, &self.mailbox);
        st.stats.in_flight.end(self.kind);
    }
}

fn parse_dt(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return Some(n.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(|d| d.and_hms_opt(0, 0, 0).unwrap().and_utc())
}

fn base_url(sh: &Shared, headers: &HeaderMap) -> String {
    headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(|h| format!("http://{h}")).unwrap_or_else(|| sh.url.clone())
}

fn query_get<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// The `/v1.0/*` handler.
pub async fn handle(AxState(sh): AxState<Arc<Shared>>, req: Request) -> Response {
    // Pre-rendered pages ([`crate::replay`]): answered before anything else.
    if sh.replay.mode() == crate::replay::ReplayMode::Serve
        && req.headers().contains_key(header::AUTHORIZATION)
        && let Some(rec) = req.uri().path_and_query().and_then(|pq| sh.replay.lookup(pq.as_str(), req.headers()))
    {
        let mut r = Ctx::new(req.headers()).json(StatusCode::OK, rec.body);
        if let Some(p) = rec.preference_applied {
            r.headers_mut().insert("Preference-Applied", p);
        }
        return r;
    }
    let headers = req.headers().clone();
    let ctx = Ctx::new(&headers);
    let uri = req.uri().clone();
    let url_key = uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
    let query: Vec<(String, String)> = url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()).into_owned().collect();
    let base = base_url(&sh, &headers);
    let segs = segments(uri.path());
    let Some(route) = route(&segs) else {
        let last = segs.last().cloned().unwrap_or_default();
        return ctx.error(StatusCode::BAD_REQUEST, "BadRequest", &format!("Resource not found for the segment '{last}'."));
    };
    if req.method() != axum::http::Method::GET {
        return ctx.error(StatusCode::METHOD_NOT_ALLOWED, "Request_BadRequest", "The simulator serves GET only on Graph routes.");
    }

    // Authenticate.
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .map(str::to_string);
    let (client_id, principal) = {
        let mut st = sh.state.lock();
        st.stats.requests_total += 1;
        let Some(tok) = bearer.clone().filter(|t| !t.is_empty()) else {
            return ctx.error(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", "Access token is empty.");
        };
        let Some(at) = st.auth.access.get(&tok) else {
            return ctx.error(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", "CompactToken parsing failed with error code: 80049217");
        };
        if at.revoked || at.expires <= std::time::Instant::now() {
            return ctx.error(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.");
        }
        (at.client_id.clone(), at.principal.clone())
    };

    match route {
        Route::ListUsers => {
            sh.state.lock().stats.requests_by_kind.entry("users".into()).and_modify(|n| *n += 1).or_insert(1);
            list_users(&sh, &ctx, &principal, &query, &base)
        }
        Route::Mailbox(target, op) => {
            let req = MailboxRequest { target, op, client_id, principal, bearer: bearer.unwrap_or_default(), query, headers, base, url_key };
            mailbox_request(sh.clone(), ctx, req).await
        }
    }
}

const USER_PROPS: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

fn user_value(st: &State, ui: usize, select: Option<&[String]>) -> Value {
    let u = &st.world.users[ui];
    let (given, surname) = u.display_name.split_once(' ').unwrap_or((&u.display_name, ""));
    let full = json!({
        "businessPhones": [], "displayName": u.display_name, "givenName": given, "jobTitle": null,
        "mail": u.mail, "mobilePhone": null, "officeLocation": null, "preferredLanguage": "en-US",
        "surname": surname, "userPrincipalName": u.upn, "id": u.id, "accountEnabled": true,
    });
    let mut out = serde_json::Map::new();
    for (k, v) in full.as_object().expect("object") {
        let keep = match select {
            Some(s) => s.iter().any(|x| x.eq_ignore_ascii_case(k)),
            None => USER_PROPS.contains(&k.as_str()),
        };
        if keep {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

fn list_users(sh: &Arc<Shared>, ctx: &Ctx, principal: &Principal, query: &[(String, String)], base: &str) -> Response {
    let st = sh.state.lock();
    let allowed = match principal {
        Principal::App { roles } => has_any(roles, &["User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"]),
        Principal::User { scopes, .. } => has_any(scopes, &["User.ReadBasic.All", "User.Read.All", "Directory.Read.All"]),
    };
    if !allowed {
        return ctx.error(StatusCode::FORBIDDEN, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.");
    }
    let (offset, top, select) = match query_get(query, "$skiptoken") {
        Some(t) => {
            let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| serde_json::from_slice::<(usize, usize, Option<Vec<String>>)>(&b).ok());
            match decoded {
                Some(d) => d,
                None => {
                    return ctx.error(
                        StatusCode::BAD_REQUEST,
                        "Directory_ExpiredPageToken",
                        "The specified page token value has expired and can no longer be included in your request.",
                    );
                }
            }
        }
        None => {
            let top = match query_get(query, "$top") {
                None => 100,
                Some(t) => match t.parse::<i64>() {
                    Ok(n) if (1..=999).contains(&n) => n as usize,
                    _ => {
                        return ctx.error(
                            StatusCode::BAD_REQUEST,
                            "Request_UnsupportedQuery",
                            &format!("Invalid page size specified: '{t}'. Must be between 1 and 999 inclusive."),
                        );
                    }
                },
            };
            let select = query_get(query, "$select").map(|s| s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect::<Vec<_>>());
            (0, top, select)
        }
    };
    let n = st.world.users.len();
    let end = (offset + top).min(n);
    let values: Vec<Value> = (offset..end).map(|i| user_value(&st, i, select.as_deref())).collect();
    let ctx_sel = select.as_ref().map(|s| format!("({})", s.join(","))).unwrap_or_default();
    let mut body = json!({"@odata.context": format!("{base}/v1.0/$metadata#users{ctx_sel}"), "value": values});
    if end < n {
        let tok = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&(end, top, &select)).expect("json"));
        body["@odata.nextLink"] = json!(format!("{base}/v1.0/users?$skiptoken={tok}"));
    }
    ctx.json(StatusCode::OK, Bytes::from(body.to_string()))
}

/// A request for one mailbox's resource, authenticated: who asks, for what, and how.
struct MailboxRequest {
    target: Target,
    op: Op,
    client_id: String,
    principal: Principal,
    bearer: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    /// The server's own base URL (for links).
    base: String,
    /// The path and query, as the replay store keys it.
    url_key: String,
}

async fn mailbox_request(sh: Arc<Shared>, ctx: Ctx, req: MailboxRequest) -> Response {
    let MailboxRequest { target, op, client_id, principal, bearer, query, headers, base, url_key } = req;
    // Resolve the user and check permissions.
    let (ui, latency) = {
        let mut st = sh.state.lock();
        bump(&mut st.stats.requests_by_kind, op.kind());
        let ui = match (&target, &principal) {
            (Target::Me, Principal::App { .. }) => {
                return ctx.error(StatusCode::BAD_REQUEST, "BadRequest", "/me request is only valid with delegated authentication flow.");
            }
            (Target::Me, Principal::User { user, .. }) => *user,
            (Target::User(key), _) => match st.world.user_index(key) {
                Some(i) => i,
                None if op == Op::GetUser => {
                    return ctx.error(
                        StatusCode::NOT_FOUND,
                        "Request_ResourceNotFound",
                        &format!("Resource '{key}' does not exist or one of its queried reference-property objects are not present."),
                    );
                }
                None => return ctx.error(StatusCode::NOT_FOUND, "ErrorInvalidUser", &format!("The requested user '{key}' is invalid.")),
            },
        };
        if let (Target::User(key), Op::GetUser) = (&target, &op)
            && st.listed(&st.cfg.bad_request_users, ui)
        {
            return ctx.error(StatusCode::BAD_REQUEST, "BadRequest", &format!("Invalid object identifier '{key}'."));
        }
        let denied = match (&principal, &op) {
            (Principal::App { roles }, Op::GetUser) => !has_any(roles, &["User.Read.All", "User.ReadBasic.All", "User.ReadWrite.All", "Directory.Read.All"]),
            (Principal::User { user, scopes }, Op::GetUser) => {
                !(has_any(scopes, &["User.ReadBasic.All", "User.Read.All"]) || (*user == ui && has_any(scopes, &["User.Read"])))
            }
            (Principal::App { roles }, op) if op.is_calendar() => {
                !has_any(roles, &["Calendars.Read", "Calendars.ReadBasic", "Calendars.ReadWrite", "Calendars.ReadBasic.All"])
            }
            (Principal::App { roles }, _) => !has_any(roles, &["Mail.Read", "Mail.ReadBasic", "Mail.ReadBasic.All", "Mail.ReadWrite"]),
            (Principal::User { user, scopes }, op) if op.is_calendar() => {
                !has_any(scopes, &["Calendars.Read", "Calendars.ReadBasic", "Calendars.ReadWrite"])
                    || (*user != ui && !has_any(scopes, &["Calendars.Read.Shared"]))
            }
            (Principal::User { user, scopes }, _) => {
                !has_any(scopes, &["Mail.Read", "Mail.ReadBasic", "Mail.ReadWrite"]) || (*user != ui && !has_any(scopes, &["Mail.Read.Shared"]))
            }
        };
        if denied {
            if op == Op::GetUser {
                return ctx.error(StatusCode::FORBIDDEN, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.");
            }
            return ctx.error(StatusCode::FORBIDDEN, "ErrorAccessDenied", "Access is denied. Check credentials and try again.");
        }
        if op == Op::GetUser {
            // `$select` works on a single user as on the listing.
            let select = query_get(&query, "$select").map(|s| s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect::<Vec<_>>());
            let mut v = user_value(&st, ui, select.as_deref());
            v["@odata.context"] = json!(format!("{base}/v1.0/$metadata#users/$entity"));
            return ctx.json(StatusCode::OK, Bytes::from(v.to_string()));
        }
        let uid = st.world.users[ui].id.clone();
        bump(&mut st.stats.requests_by_mailbox, &uid);
        let (limit, window, max_if) = (st.cfg.requests_per_window, st.cfg.window, st.cfg.max_in_flight);
        match st.throttle.admit(&client_id, &uid, limit, window, max_if) {
            Ok(n) => {
                let m = st.stats.max_in_flight.entry(uid.clone()).or_default();
                *m = (*m).max(n);
                st.stats.in_flight.start(op.kind());
            }
            Err(Throttled::Concurrency) => {
                bump(&mut st.stats.throttled, "concurrency");
                let mut r = ctx.error(StatusCode::TOO_MANY_REQUESTS, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.");
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                r.headers_mut().insert("RateLimit-Exceeded", HeaderValue::from_static("MailboxConcurrency"));
                return r;
            }
            Err(Throttled::Window { retry_after }) => {
                bump(&mut st.stats.throttled, "window");
                let mut r = ctx.error(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", "Please retry again later.");
                let secs = format!("{:.3}", retry_after.as_secs_f64());
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_str(&secs).expect("ascii"));
                return r;
            }
        }
        (ui, st.cfg.latency)
    };
    let uid = sh.state.lock().world.users[ui].id.clone();
    let _guard = InFlight { sh: sh.clone(), client: client_id.clone(), mailbox: uid.clone(), kind: op.kind() };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    // Faults, decided before any state is touched.
    let fault = {
        let mut st = sh.state.lock();
        let st = &mut *st;
        let f = st.faults.decide(&url_key, &st.cfg, &mut st.fault_rng);
        if let Some(f) = f {
            bump(&mut st.stats.faults, f.name());
            if matches!(f, Fault::ServiceUnavailable { .. } | Fault::GatewayTimeout { .. }) {
                st.stats.server_errors += 1;
            }
            if f == Fault::TokenRevocation
                && let Some(t) = st.auth.access.get_mut(&bearer)
            {
                t.revoked = true;
            }
        }
        f.map(|f| (f, st.cfg.slow_latency))
    };
    if let Some((f, slow)) = fault {
        if let Some(r) = fault_response(&ctx, f, &base) {
            return r;
        }
        tokio::time::sleep(slow).await;
    }

    let mut st = sh.state.lock();
    let st = &mut *st;
    let user = &st.world.users[ui];
    if user.mailbox.is_none() || st.listed(&st.cfg.disabled_mailboxes, ui) {
        return ctx.error(StatusCode::NOT_FOUND, "MailboxNotEnabledForRESTAPI", "The mailbox is either inactive, soft-deleted, or is hosted on-premise.");
    }
    if matches!(principal, Principal::App { .. }) && st.listed(&st.cfg.blocked_mailboxes, ui) {
        return ctx.error(
            StatusCode::FORBIDDEN,
            "ErrorAccessDenied",
            "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.",
        );
    }
    if op.is_delta() && st.listed(&st.cfg.quota_exceeded_mailboxes, ui) {
        return ctx.error(StatusCode::FORBIDDEN, "ErrorQuotaExceeded", "Mailbox has exceeded maximum mailbox size.");
    }
    let p = prefs(&headers);
    let link_prefix = match target {
        Target::Me => format!("{base}/v1.0/me"),
        Target::User(_) => format!("{base}/v1.0/users/{}", st.world.users[ui].id),
    };
    let mb = st.world.users[ui].mailbox.as_ref().expect("checked");
    match op {
        Op::GetFolder(key) => {
            let Some(fid) = mb.folder_id(&key) else {
                return ctx.error(StatusCode::NOT_FOUND, "ErrorItemNotFound", "The specified object was not found in the store.");
            };
            let mut v = if fid == mb.root_id {
                let kids = mb.folders.values().filter(|c| c.parent_id == fid).count();
                json!({"id": fid, "displayName": "Top of Information Store", "parentFolderId": fmt_root_parent(&fid), "childFolderCount": kids, "unreadItemCount": 0, "totalItemCount": 0, "isHidden": false})
            } else {
                let kids = mb.folders.values().filter(|c| c.parent_id == fid).count();
                wire::folder_value(&mb.folders[&fid], kids)
            };
            v["@odata.context"] = json!(format!("{base}/v1.0/$metadata#users('{}')/mailFolders/$entity", st.world.users[ui].id));
            ctx.json(StatusCode::OK, Bytes::from(v.to_string()))
        }
        Op::ListCalendars => {
            let mut top = 10;
            if let Some(t) = query_get(&query, "$top") {
                match t.parse::<usize>() {
                    Ok(n) if n >= 1 => top = n,
                    _ => return ctx.error(StatusCode::BAD_REQUEST, "ErrorInvalidUrlQuery", &format!("The value '{t}' of parameter '$top' is invalid.")),
                }
            }
            let top = top.min(st.cfg.page_cap.max(1));
            let mut skip = 0;
            if let Some(t) = query_get(&query, "$skip") {
                match t.parse::<usize>() {
                    Ok(n) => skip = n,
                    _ => return ctx.error(StatusCode::BAD_REQUEST, "ErrorInvalidUrlQuery", &format!("The value '{t}' of parameter '$skip' is invalid.")),
                }
            }
            let cals = mb.calendars_listed();
            let (from, to) = (skip.min(cals.len()), (skip.saturating_add(top)).min(cals.len()));
            let values: Vec<Value> = cals[from..to].iter().map(|c| wire::calendar_value(c)).collect();
            let mut body = json!({
                "@odata.context": format!("{base}/v1.0/$metadata#users('{}')/calendars", st.world.users[ui].id),
                "value": values,
            });
            if to < cals.len() {
                body["@odata.nextLink"] = json!(format!("{link_prefix}/calendars?$top={top}&$skip={to}"));
            }
            ctx.json(StatusCode::OK, Bytes::from(body.to_string()))
        }
        Op::GetCalendar(key) => {
            let cid = key.unwrap_or_else(|| mb.default_calendar_id().to_string());
            let Some(c) = mb.calendars.get(&cid) else {
                return ctx.error(StatusCode::NOT_FOUND, "ErrorItemNotFound", "The specified object was not found in the store.");
            };
            let mut v = wire::calendar_value(c);
            v["@odata.context"] = json!(format!("{base}/v1.0/$metadata#users('{}')/calendars/$entity", st.world.users[ui].id));
            ctx.json(StatusCode::OK, Bytes::from(v.to_string()))
        }
        op => {
            let token = query_get(&query, "$skiptoken").or_else(|| query_get(&query, "$deltatoken")).map(|t| TokenParam { value: t.to_string() });
            let token_used = token.is_some();
            let mut select = None;
            let mut top = None;
            let mut kind = CollKind::Folders;
            let mut path = None;
            match &op {
                Op::MessageDelta(key) => {
                    let folder = mb.folder_id(key).filter(|f| *f != mb.root_id);
                    if token.is_none() {
                        let Some(folder) = folder else {
                            return ctx.error(StatusCode::NOT_FOUND, "ErrorItemNotFound", "The specified object was not found in the store.");
                        };
                        kind = CollKind::Messages { folder };
                        if let Some(s) = query_get(&query, "$select") {
                            let mut names = Vec::new();
                            for n in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                                match wire::canonical_message_prop(n) {
                                    Some(c) => names.push(c.to_string()),
                                    None => {
                                        return ctx.error(
                                            StatusCode::BAD_REQUEST,
                                            "RequestBroker--ParseUri",
                                            &format!("Could not find a property named '{n}' on type 'microsoft.graph.message'."),
                                        );
                                    }
                                }
                            }
                            select = Some(names);
                        }
                        if let Some(t) = query_get(&query, "$top") {
                            match t.parse::<usize>() {
                                Ok(n) if n >= 1 => top = Some(n),
                                _ => {
                                    return ctx.error(
                                        StatusCode::BAD_REQUEST,
                                        "ErrorInvalidUrlQuery",
                                        &format!("The value '{t}' of parameter '$top' is invalid."),
                                    );
                                }
                            }
                        }
                    }
                }
                Op::CalendarDelta(sel) => {
                    let calendar = match sel {
                        CalSel::Id(k) if !mb.calendars.contains_key(k) => {
                            return ctx.error(StatusCode::NOT_FOUND, "ErrorItemNotFound", "The specified object was not found in the store.");
                        }
                        CalSel::Id(k) => {
                            path = Some(format!("calendars('{k}')/calendarView/delta"));
                            k.clone()
                        }
                        CalSel::Default => {
                            path = Some("calendarView/delta".to_string());
                            mb.default_calendar_id().to_string()
                        }
                        CalSel::DefaultNamed => {
                            path = Some("calendar/calendarView/delta".to_string());
                            mb.default_calendar_id().to_string()
                        }
                    };
                    // With a token, the token names the calendar and the window.
                    if token.is_none() {
                        for bad in ["$select", "$filter", "$orderby", "$expand", "$search"] {
                            if query_get(&query, bad).is_some() {
                                return ctx.error(
                                    StatusCode::BAD_REQUEST,
                                    "ErrorInvalidUrlQuery",
                                    &format!("The following parameters are not supported with change tracking over the 'CalendarView' resource: '{bad}'."),
                                );
                            }
                        }
                        let (Some(s), Some(e)) = (query_get(&query, "startDateTime"), query_get(&query, "endDateTime")) else {
                            return ctx.error(
                                StatusCode::BAD_REQUEST,
                                "ErrorInvalidParameter",
                                "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
                            );
                        };
                        let (Some(start), Some(end)) = (parse_dt(s), parse_dt(e)) else {
                            return ctx.error(
                                StatusCode::BAD_REQUEST,
                                "ErrorInvalidParameter",
                                "The value of the parameter 'StartDateTime' or 'EndDateTime' is invalid.",
                            );
                        };
                        if end <= start {
                            return ctx.error(
                                StatusCode::BAD_REQUEST,
                                "ErrorInvalidParameter",
                                "The parameter 'EndDateTime' must be later than 'StartDateTime'.",
                            );
                        }
                        if end - start > chrono::Duration::days(1825) {
                            return ctx.error(StatusCode::BAD_REQUEST, "ErrorInvalidRequest", "Your request can't be completed. The range between the start and end dates is greater than the allowed range. Maximum number of days: 1825");
                        }
                        kind = CollKind::Calendar { calendar, start, end };
                    }
                }
                _ => {}
            }
            let page_size = p.max_page_size.unwrap_or(st.cfg.default_page_size).min(st.cfg.page_cap).max(1);
            let knobs = Knobs {
                generations: st.cfg.sync_generations,
                replay_rate: st.cfg.replay_rate,
                empty_page_rate: st.cfg.empty_page_rate,
                calendar_empty_first_page: st.cfg.calendar_empty_first_page,
            };
            let req = DeltaRequest {
                user: ui,
                link_prefix,
                kind,
                path,
                token,
                immutable: p.immutable,
                select,
                top,
                page_size,
                zone: if matches!(op, Op::CalendarDelta(_)) { p.zone.clone() } else { None },
                text_body: p.text_body,
            };
            match st.sync.serve(&mut st.world, req, &knobs, &mut st.rng) {
                Ok(page) => {
                    st.stats.items_served += page.items as u64;
                    st.stats.delta_pages += 1;
                    let mut applied = vec!["odata.track-changes".to_string()];
                    if p.max_page_size.is_some() {
                        applied.push(format!("odata.maxpagesize={page_size}"));
                    }
                    if p.immutable {
                        applied.push("IdType=\"ImmutableId\"".into());
                    }
                    if let (Some(z), Op::CalendarDelta(_)) = (&p.zone, &op) {
                        applied.push(format!("outlook.timezone=\"{z}\""));
                    }
                    // Hostile pages (tests only; no rules by default).
                    let page_body = if st.cfg.hostile.is_empty() {
                        page.body
                    } else {
                        let stream = match op {
                            Op::MessageDelta(_) => crate::hostile::HostileStream::Messages,
                            Op::CalendarDelta(_) => crate::hostile::HostileStream::Events,
                            _ => crate::hostile::HostileStream::MailFolders,
                        };
                        let u = &st.world.users[ui];
                        crate::hostile::apply(&st.cfg.hostile, &u.id, &u.upn, stream, token_used, page.body)
                    };
                    let body = page_body.clone();
                    let mut r = ctx.json(StatusCode::OK, page_body);
                    r.headers_mut()
                        .insert("Preference-Applied", HeaderValue::from_str(&applied.join(",")).unwrap_or(HeaderValue::from_static("odata.track-changes")));
                    sh.replay.record(&url_key, &headers, &body, r.headers().get("Preference-Applied"));
                    r
                }
                Err(DeltaError::Gone { generation, highest, kept }) => {
                    ctx.error(StatusCode::GONE, "SyncStateNotFound", &DeltaError::gone_message(generation, highest, &kept))
                }
                Err(DeltaError::Invalid) => ctx.error(
                    StatusCode::BAD_REQUEST,
                    "SyncStateInvalid",
                    "The sync state is invalid: the IdType preference differs from the one the sync state was created with.",
                ),
                Err(DeltaError::BadToken) => {
                    ctx.error(StatusCode::BAD_REQUEST, "ErrorInvalidUrlQuery", "The value of parameter '$skiptoken' or '$deltatoken' is invalid.")
                }
                Err(DeltaError::FolderGone) => ctx.error(StatusCode::NOT_FOUND, "ErrorItemNotFound", "The specified object was not found in the store."),
            }
        }
    }
}

fn fmt_root_parent(root: &str) -> String {
    format!("{}AAAAAA==", &root[..root.len().min(40)])
}

fn fault_response(ctx: &Ctx, f: Fault, base: &str) -> Option<Response> {
    let with = |mut r: Response, retry: bool| {
        if retry {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    };
    Some(match f {
        Fault::ServiceUnavailable { retry_after, empty_body } => {
            let r = if empty_body {
                ctx.empty(StatusCode::SERVICE_UNAVAILABLE)
            } else {
                ctx.error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "Service Unavailable")
            };
            with(r, retry_after)
        }
        Fault::GatewayTimeout { retry_after, empty_body } => {
            let r = if empty_body { ctx.empty(StatusCode::GATEWAY_TIMEOUT) } else { ctx.error(StatusCode::GATEWAY_TIMEOUT, "UnknownError", "") };
            with(r, retry_after)
        }
        Fault::ConnectionReset => {
            let head = Bytes::from(format!(
                "{{\"@odata.context\":\"{base}/v1.0/$metadata#Collection(message)\",\"value\":[{{\"@odata.type\":\"#microsoft.graph.message\",\"id\":\"AAMkAG"
            ));
            // Let the headers and the first bytes reach the client before the connection drops.
            use futures::StreamExt;
            let first = futures::stream::once(async move { Ok::<Bytes, std::io::Error>(head) });
            let fail = futures::stream::once(async {
                tokio::time::sleep(std::time::Duration::from_millis(30)).await;
                Err::<Bytes, std::io::Error>(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "simulated connection reset"))
            });
            ctx.stream(StatusCode::OK, Body::from_stream(first.chain(fail)))
        }
        Fault::TruncatedJson => {
            let body = format!(
                "{{\"@odata.context\":\"{base}/v1.0/$metadata#Collection(message)\",\"value\":[{{\"@odata.type\":\"#microsoft.graph.message\",\"@odata.etag\":\"W/\\\"CQAAABYAAA"
            );
            ctx.json(StatusCode::OK, Bytes::from(body))
        }
        Fault::TokenRevocation => ctx.error(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", "Access token has expired or is not yet valid."),
        Fault::Slow => return None,
    })
}
