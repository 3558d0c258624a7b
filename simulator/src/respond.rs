//! Graph response helpers: the §5.1 error body and the correlation headers.
//!
//! Every Graph response carries `request-id` and `client-request-id` (the caller's value echoed,
//! or the request id). Errors look like
//! `{"error":{"code","message","innerError":{"date":"2023-02-20T05:06:48","request-id","client-request-id"}}}`.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::json;

use crate::fmt;

/// Correlation ids of one request.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub request_id: String,
    pub client_request_id: String,
}

impl Ctx {
    pub fn new(headers: &HeaderMap) -> Ctx {
        let request_id = fmt::request_id();
        let client_request_id = headers.get("client-request-id").and_then(|v| v.to_str().ok()).map(str::to_string).unwrap_or_else(|| request_id.clone());
        Ctx { request_id, client_request_id }
    }

    fn builder(&self, status: StatusCode) -> axum::http::response::Builder {
        Response::builder().status(status).header("request-id", &self.request_id).header("client-request-id", &self.client_request_id)
    }

    /// A JSON body with the correlation headers.
    pub fn json(&self, status: StatusCode, body: Bytes) -> Response {
        self.builder(status)
            .header(header::CONTENT_TYPE, "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8")
            .body(Body::from(body))
            .expect("response")
    }

    /// A Graph error body.
    pub fn error(&self, status: StatusCode, code: &str, message: &str) -> Response {
        let body = json!({"error": {"code": code, "message": message, "innerError": {
            "date": fmt::inner_date(chrono::Utc::now()),
            "request-id": self.request_id,
            "client-request-id": self.client_request_id,
        }}});
        let mut r = self.json(status, Bytes::from(serde_json::to_vec(&body).expect("json")));
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\""),
            );
        }
        r
    }

    /// An empty-bodied response with the correlation headers.
    pub fn empty(&self, status: StatusCode) -> Response {
        self.builder(status).body(Body::empty()).expect("response")
    }

    /// A response whose body is the given stream.
    pub fn stream(&self, status: StatusCode, body: Body) -> Response {
        self.builder(status).header(header::CONTENT_TYPE, "application/json").body(body).expect("response")
    }
}
