//! Graph and identity-platform error bodies → [`SourceError`] with a message a person can act on.
//!
//! Contract: branch on `code` (Graph) or `error` (token endpoint), never on the free-text
//! message; compare codes case-insensitively (Graph spells them both `ErrorItemNotFound` and
//! `itemNotFound`). Messages name the code and the fix, and never contain a secret or a token.

use outlake_pipeline::source::{SourceError, SourceErrorKind};
use serde::Deserialize;

/// The `error` object of a Graph error body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphError {
    pub code: Option<String>,
    pub message: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    error: Option<Inner>,
}

#[derive(Deserialize)]
struct Inner {
    code: Option<serde_json::Value>,
    message: Option<serde_json::Value>,
}

impl GraphError {
    /// Parse `{"error":{"code","message",…}}`; anything else (empty body, HTML from a proxy)
    /// gives an empty `GraphError`.
    pub fn parse(body: &[u8]) -> GraphError {
        let Ok(env) = serde_json::from_slice::<Envelope>(body) else {
            return GraphError::default();
        };
        let Some(inner) = env.error else { return GraphError::default() };
        let s = |v: Option<serde_json::Value>| match v {
            Some(serde_json::Value::String(s)) => Some(s),
            _ => None,
        };
        GraphError { code: s(inner.code), message: s(inner.message).map(|m| truncate(&m, 300)) }
    }

    /// Case-insensitive code comparison.
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(code))
    }

    pub fn is_any(&self, codes: &[&str]) -> bool {
        codes.iter().any(|c| self.is(c))
    }

    /// Refused by an Exchange application access policy (or RBAC for Applications) rather than
    /// by a missing permission. Graph answers both with `ErrorAccessDenied`; only the message
    /// tells them apart, by the `[RAOP]` tag Exchange puts in it. The message is read here,
    /// once, into this answer; nothing else branches on its text.
    pub fn is_access_policy(&self) -> bool {
        self.is("ErrorAccessDenied") && self.message.as_deref().is_some_and(|m| m.contains("[RAOP]"))
    }

    /// `code: message` for error text.
    pub fn describe(&self) -> String {
        match (&self.code, &self.message) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.clone(),
            (None, Some(m)) => m.clone(),
            (None, None) => "no error body".to_string(),
        }
    }
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// What to do about a mailbox-level Graph refusal.
pub(crate) fn mailbox_advice(err: &GraphError, status: u16) -> &'static str {
    if err.is("ErrorQuotaExceeded") {
        "the mailbox is over its size quota; delta queries fail until it is cleaned up"
    } else if err.is("ErrorAccessDenied") {
        "an application access policy or missing Mail.Read/Calendars.Read permission blocks this mailbox"
    } else if err.is("Authorization_RequestDenied") {
        "the app lacks a directory permission (User.Read.All) or admin consent"
    } else if err.is_any(&["MailboxNotEnabledForRESTAPI", "ErrorInvalidUser", "ResourceNotFound", "Request_ResourceNotFound"]) {
        "the user has no Exchange Online mailbox (no licence, inactive, or hosted on-premises); remove it from `mailboxes`"
    } else if err.is("ErrorInvalidRequest") {
        "Graph rejected the query; for calendar windows keep calendar_end - calendar_start under 1825 days"
    } else if err.is("ErrorInvalidIdMalformed") {
        "Graph could not read an id in the URL"
    } else if status == 403 {
        "access was denied; check the app's Mail.Read and Calendars.Read application permissions and access policies"
    } else {
        "Graph refused the request for this mailbox"
    }
}

/// A token-endpoint error body (`{error, error_description:"AADSTSnnnn: …", error_codes:[n]}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenError {
    pub error: String,
    /// `AADSTS7000215`, from `error_codes` or the description's prefix.
    pub aadsts: Option<String>,
    /// First line of `error_description` (no trace ids).
    pub description: Option<String>,
}

#[derive(Deserialize)]
struct TokenErrorBody {
    error: Option<String>,
    error_description: Option<String>,
    error_codes: Option<Vec<serde_json::Value>>,
}

impl TokenError {
    pub fn parse(body: &[u8]) -> Option<TokenError> {
        let b: TokenErrorBody = serde_json::from_slice(body).ok()?;
        Some(Self::from_parts(b.error?, b.error_description, b.error_codes.unwrap_or_default()))
    }

    pub fn from_parts(error: String, description: Option<String>, codes: Vec<serde_json::Value>) -> TokenError {
        let from_codes = codes.first().and_then(|c| c.as_u64()).map(|n| format!("AADSTS{n}"));
        let from_desc = description.as_deref().and_then(|d| {
            let rest = d.trim_start().strip_prefix("AADSTS")?;
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            (!digits.is_empty()).then(|| format!("AADSTS{digits}"))
        });
        let description = description.as_deref().and_then(|d| d.lines().next()).map(|l| truncate(l.trim(), 300));
        TokenError { error, aadsts: from_codes.or(from_desc), description }
    }

    /// Only `temporarily_unavailable` is worth another try; every other refusal needs a person.
    pub fn is_transient(&self) -> bool {
        self.error.eq_ignore_ascii_case("temporarily_unavailable")
    }

    fn code_num(&self) -> Option<&str> {
        self.aadsts.as_deref().and_then(|c| c.strip_prefix("AADSTS"))
    }

    /// The fix for this refusal, by `error` and, where it tells more, the AADSTS number.
    pub fn advice(&self, refresh: bool) -> &'static str {
        let e = self.error.to_ascii_lowercase();
        match (e.as_str(), self.code_num()) {
            (_, Some("7000222")) => "the client secret has expired: create a new one and set client_secret / OUTLAKE_SOURCE__CLIENT_SECRET",
            ("invalid_client", Some("7000218")) => "the app needs a client secret, or must allow public client flows for device sign-in",
            ("invalid_client", _) => "check source.client_secret / OUTLAKE_SOURCE__CLIENT_SECRET (use the secret's value, not its id)",
            (_, Some("700016")) | ("unauthorized_client", _) => {
                "check source.client_id (the Application (client) ID): the app is not registered in this tenant or not consented"
            }
            (_, Some("90002")) => "check source.tenant_id (the Directory (tenant) ID or a verified domain): the tenant was not found",
            ("invalid_request", _) => "check source.tenant_id and source.client_id",
            ("invalid_scope", _) => {
                "the scope was refused: app-only access asks for https://graph.microsoft.com/.default (grant application permissions and admin consent); delegated sign-in uses source.scopes, e.g. scopes = \"offline_access Mail.Read Calendars.Read\", then run outlake auth login"
            }
            ("invalid_grant", _) if refresh => "sign in again: outlake auth login",
            ("invalid_grant", _) | ("interaction_required", _) | ("consent_required", _) => {
                "sign in again: outlake auth login (an admin may need to grant consent)"
            }
            _ => "check source.tenant_id, source.client_id and source.client_secret",
        }
    }

    pub fn to_source_error(&self, refresh: bool) -> SourceError {
        let code = self.aadsts.clone().unwrap_or_else(|| self.error.clone());
        let what = self.description.clone().unwrap_or_else(|| self.error.clone());
        SourceError::new(
            SourceErrorKind::Auth,
            Some(code.clone()),
            format!("token endpoint refused the request ({code}, {}): {what}; {}", self.error, self.advice(refresh)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_graph_error_and_compares_codes_case_insensitively() {
        let e = GraphError::parse(br#"{"error":{"code":"itemNotFound","message":"gone","innerError":{"date":"2023-02-20T05:06:48"}}}"#);
        assert!(e.is("ItemNotFound"));
        assert_eq!(e.describe(), "itemNotFound: gone");
        assert_eq!(GraphError::parse(b""), GraphError::default());
        assert_eq!(GraphError::parse(b"<html>"), GraphError::default());
    }

    #[test]
    fn access_policy_is_told_from_a_missing_permission() {
        let policy = GraphError::parse(
            br#"{"error":{"code":"ErrorAccessDenied","message":"Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings."}}"#,
        );
        assert!(policy.is_access_policy());
        let permission = GraphError::parse(br#"{"error":{"code":"ErrorAccessDenied","message":"Access is denied. Check credentials and try again."}}"#);
        assert!(!permission.is_access_policy());
        let other_code = GraphError::parse(br#"{"error":{"code":"ErrorQuotaExceeded","message":"[RAOP]"}}"#);
        assert!(!other_code.is_access_policy());
    }

    #[test]
    fn token_error_names_aadsts_and_fix() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x\r\nCorrelation ID: y","error_codes":[7000215]}"#;
        let t = TokenError::parse(body).unwrap();
        assert_eq!(t.aadsts.as_deref(), Some("AADSTS7000215"));
        let e = t.to_source_error(false);
        assert_eq!(e.kind, SourceErrorKind::Auth);
        assert!(e.message.contains("AADSTS7000215"), "{}", e.message);
        assert!(e.message.contains("client_secret"), "{}", e.message);
        assert!(!e.message.contains("Trace ID"));
        let g = TokenError::from_parts("invalid_grant".into(), Some("AADSTS70008: expired".into()), vec![]);
        assert!(g.to_source_error(true).message.contains("outlake auth login"));
        let t = TokenError::from_parts("invalid_request".into(), Some("AADSTS90002: Tenant 'x' not found.".into()), vec![]);
        assert!(t.to_source_error(false).message.contains("tenant_id"));
        let c = TokenError::from_parts("unauthorized_client".into(), Some("AADSTS700016: app not found".into()), vec![]);
        assert!(c.to_source_error(false).message.contains("client_id"));
        assert!(TokenError::from_parts("temporarily_unavailable".into(), None, vec![]).is_transient());
        let s = TokenError::from_parts("invalid_scope".into(), Some("AADSTS70011: The scope x is not valid.".into()), vec![]);
        assert!(!s.is_transient());
        let e = s.to_source_error(false);
        assert_eq!(e.kind, SourceErrorKind::Auth);
        assert!(e.message.contains("AADSTS70011") && e.message.contains("source.scopes"), "{}", e.message);
        for (err, code) in [("invalid_client", "7000215"), ("unauthorized_client", "700016"), ("invalid_request", "90002"), ("invalid_grant", "70008")] {
            assert!(!TokenError::from_parts(err.into(), Some(format!("AADSTS{code}: x")), vec![]).is_transient(), "{err} is not retried");
        }
    }
}
