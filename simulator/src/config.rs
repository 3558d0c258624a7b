//! Simulator configuration.
//!
//! [`SimConfig`] describes the generated world (seed, sizes), the service limits Graph applies
//! (page sizes, throttling, sync-state generations), injected faults, and the app registration
//! the identity platform double knows about. Fields marked "live" take effect immediately when
//! changed through [`crate::Simulator::reconfigure`] or `POST /_sim/reconfigure`; the world-shape
//! fields (seed, users, messages, bulk messages, events, calendars) only matter at start.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Per-kind fault probabilities (0.0–1.0), each applied per Graph request (live).
///
/// Every transient fault is injected at most once per request URL, so retrying the same URL
/// always gets through.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FaultRates {
    /// 503 ServiceUnavailable; half of them carry `Retry-After`, some have an empty body.
    pub service_unavailable: f64,
    /// 504 GatewayTimeout; some with `Retry-After`, some with an empty body.
    pub gateway_timeout: f64,
    /// 200 headers and part of the body, then the connection is dropped.
    pub connection_reset: f64,
    /// 200 with a complete HTTP body that is cut-off JSON.
    pub truncated_json: f64,
    /// Extra latency ([`SimConfig::slow_latency`]) before an otherwise normal answer.
    pub slow: f64,
    /// The access token used is revoked; the request gets 401 InvalidAuthenticationToken.
    pub token_revocation: f64,
}

/// Everything the simulator can be told. See the crate docs for defaults.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of the generated world and of the fault/replay dice.
    pub seed: u64,
    /// Number of users, including exactly one (the last) without a mailbox when `users >= 2`.
    pub users: usize,
    /// Messages generated per mailbox.
    pub messages_per_mailbox: usize,
    /// Messages of the bulk folder: when > 0, the first mailbox's Inbox also holds this many
    /// messages that are generated on demand instead of stored ([`crate::bulk`]), so a folder of
    /// a million messages costs memory only for the ones that change. They are served, counted,
    /// changed and reported exactly as stored messages are.
    pub bulk_messages: usize,
    /// Event instances (single, occurrence, exception) generated per mailbox, over all its calendars.
    pub events_per_mailbox: usize,
    /// Calendars each user created besides the default "Calendar" ("Team", "Projects", …).
    pub calendars_per_mailbox: usize,
    /// Whether each mailbox also has one calendar shared with its user by another user of the
    /// tenant (only when the tenant has at least two mailboxes).
    pub shared_calendars: bool,
    /// Share (0.0–1.0) of single events placed anywhere from three years before to three years
    /// after the anchor day instead of the usual −30…+90 days, so a rolling window gains and
    /// loses events.
    pub distant_event_share: f64,
    /// Largest `odata.maxpagesize` honoured (live).
    pub page_cap: usize,
    /// Page size when no `odata.maxpagesize` preference is sent (live).
    pub default_page_size: usize,
    /// Requests admitted per (app, mailbox) per sliding `window` (live).
    pub requests_per_window: u64,
    /// Length of the throttling window (live).
    pub window: Duration,
    /// Requests in flight per (app, mailbox) before 429 MailboxConcurrency (live).
    pub max_in_flight: usize,
    /// Latency added to every Graph request, while it counts as in flight (live).
    pub latency: Duration,
    /// Probability that a Graph request gets one transient fault of a random kind (live).
    pub fault_rate: f64,
    /// Per-kind fault probabilities (live).
    pub faults: FaultRates,
    /// Latency of the `slow` fault (live).
    pub slow_latency: Duration,
    /// Probability that an item is sent twice in one delta round (live).
    pub replay_rate: f64,
    /// Probability that a delta page is served empty with a nextLink (live).
    pub empty_page_rate: f64,
    /// Serve the first page of every calendarView delta round empty, with a nextLink, as Graph
    /// often does (live).
    pub calendar_empty_first_page: bool,
    /// Access token lifetime; `None` = random 60–90 minutes (live).
    pub token_lifetime: Option<Duration>,
    /// Refresh token inactivity lifetime (live).
    pub refresh_token_lifetime: Duration,
    /// Device code lifetime (live).
    pub device_code_lifetime: Duration,
    /// Sync-state generations kept per tracked collection (live).
    pub sync_generations: usize,
    /// TCP port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Application permissions granted to the app (client_credentials tokens) (live).
    pub app_roles: Vec<String>,
    /// Delegated permissions the signed-in user consents to (live).
    pub delegated_scopes: Vec<String>,
    /// User (id or UPN) that signs in for delegated flows; `None` = first user with a mailbox.
    pub signed_in_user: Option<String>,
    /// Registered redirect URIs; the port is ignored for `http://localhost` and `http://127.0.0.1`.
    pub redirect_uris: Vec<String>,
    /// Confidential clients must send `client_secret` on every token call (live).
    pub confidential_client: bool,
    /// "Allow public client flows" on the app registration; needed by the device-code grant (live).
    pub allow_public_client_flows: bool,
    /// Approve every device code immediately, as if the user signed in at once (live).
    pub device_code_auto_approve: bool,
    /// Mailboxes (id or UPN) whose delta calls answer 403 ErrorQuotaExceeded (live).
    pub quota_exceeded_mailboxes: Vec<String>,
    /// Mailboxes (id or UPN) that answer 404 MailboxNotEnabledForRESTAPI (live).
    pub disabled_mailboxes: Vec<String>,
    /// Mailboxes (id or UPN) blocked for app-only access by an access policy: 403 (live).
    pub blocked_mailboxes: Vec<String>,
    /// Users (id or UPN) whose own entity, `GET /users/{id|upn}`, answers 400 `BadRequest`, as
    /// Graph does for a key it cannot read; their other routes answer normally. For tests of how
    /// a client classifies a failure to resolve one configured user (live).
    pub bad_request_users: Vec<String>,
    /// Day the generated calendars are centred on; `None` = today (UTC midnight).
    pub anchor: Option<chrono::DateTime<chrono::Utc>>,
    /// Corrupted delta pages, for tests of hostile input ([`crate::hostile`]); empty = none (live).
    pub hostile: Vec<crate::hostile::HostileRule>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            users: 3,
            messages_per_mailbox: 200,
            bulk_messages: 0,
            events_per_mailbox: 50,
            calendars_per_mailbox: 1,
            shared_calendars: true,
            distant_event_share: 0.2,
            page_cap: 1000,
            default_page_size: 10,
            requests_per_window: 10_000,
            window: Duration::from_secs(600),
            max_in_flight: 4,
            latency: Duration::ZERO,
            fault_rate: 0.0,
            faults: FaultRates::default(),
            slow_latency: Duration::from_millis(300),
            replay_rate: 0.0,
            empty_page_rate: 0.0,
            calendar_empty_first_page: true,
            token_lifetime: None,
            refresh_token_lifetime: Duration::from_secs(90 * 24 * 3600),
            device_code_lifetime: Duration::from_secs(900),
            sync_generations: 3,
            port: 0,
            app_roles: vec!["Mail.Read".into(), "Calendars.Read".into(), "User.Read.All".into()],
            delegated_scopes: vec!["Mail.Read".into(), "Calendars.Read".into(), "User.Read".into()],
            signed_in_user: None,
            redirect_uris: vec!["http://localhost/callback".into(), "http://localhost:48444/callback".into()],
            confidential_client: false,
            allow_public_client_flows: true,
            device_code_auto_approve: false,
            quota_exceeded_mailboxes: Vec::new(),
            disabled_mailboxes: Vec::new(),
            blocked_mailboxes: Vec::new(),
            bad_request_users: Vec::new(),
            anchor: None,
            hostile: Vec::new(),
        }
    }
}

/// A partial update of the live settings, as accepted by `POST /_sim/reconfigure`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigPatch {
    pub page_cap: Option<usize>,
    pub default_page_size: Option<usize>,
    pub requests_per_window: Option<u64>,
    pub window_secs: Option<f64>,
    pub max_in_flight: Option<usize>,
    pub latency_ms: Option<u64>,
    pub fault_rate: Option<f64>,
    pub faults: Option<FaultRates>,
    pub slow_latency_ms: Option<u64>,
    pub replay_rate: Option<f64>,
    pub empty_page_rate: Option<f64>,
    pub calendar_empty_first_page: Option<bool>,
    pub token_lifetime_secs: Option<f64>,
    pub sync_generations: Option<usize>,
    pub app_roles: Option<Vec<String>>,
    pub delegated_scopes: Option<Vec<String>>,
    pub confidential_client: Option<bool>,
    pub allow_public_client_flows: Option<bool>,
    pub device_code_auto_approve: Option<bool>,
    pub quota_exceeded_mailboxes: Option<Vec<String>>,
    pub disabled_mailboxes: Option<Vec<String>>,
    pub blocked_mailboxes: Option<Vec<String>>,
    pub bad_request_users: Option<Vec<String>>,
}

impl ConfigPatch {
    /// Applies every field that is set.
    pub fn apply(self, c: &mut SimConfig) {
        macro_rules! set {
            ($f:ident) => {
                if let Some(v) = self.$f {
                    c.$f = v;
                }
            };
        }
        set!(page_cap);
        set!(default_page_size);
        set!(requests_per_window);
        set!(max_in_flight);
        set!(fault_rate);
        set!(faults);
        set!(replay_rate);
        set!(empty_page_rate);
        set!(calendar_empty_first_page);
        set!(sync_generations);
        set!(app_roles);
        set!(delegated_scopes);
        set!(confidential_client);
        set!(allow_public_client_flows);
        set!(device_code_auto_approve);
        set!(quota_exceeded_mailboxes);
        set!(disabled_mailboxes);
        set!(blocked_mailboxes);
        set!(bad_request_users);
        if let Some(v) = self.window_secs {
            c.window = Duration::from_secs_f64(v.max(0.0));
        }
        if let Some(v) = self.latency_ms {
            c.latency = Duration::from_millis(v);
        }
        if let Some(v) = self.slow_latency_ms {
            c.slow_latency = Duration::from_millis(v);
        }
        if let Some(v) = self.token_lifetime_secs {
            c.token_lifetime = Some(Duration::from_secs_f64(v.max(0.0)));
        }
    }
}
