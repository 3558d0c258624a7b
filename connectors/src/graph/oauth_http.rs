//! The `oauth2` ↔ reqwest 0.13 adapter: oauth2 sends its token requests through the source's
//! single reqwest client (built with redirects off, as oauth2 requires for token endpoints).

use std::future::Future;
use std::pin::Pin;

#[derive(Clone)]
pub struct OAuthHttp(pub reqwest::Client);

#[derive(Debug, thiserror::Error)]
pub enum OAuthHttpError {
    #[error(transparent)]
    Reqwest(#[from] reqwest::Error),
    #[error(transparent)]
    Http(#[from] oauth2::http::Error),
}

impl<'c> oauth2::AsyncHttpClient<'c> for OAuthHttp {
    type Error = OAuthHttpError;
    type Future = Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let resp = self.0.execute(reqwest::Request::try_from(request)?).await?;
            let mut b = oauth2::http::Response::builder().status(resp.status()).version(resp.version());
            for (k, v) in resp.headers() {
                b = b.header(k, v);
            }
            Ok(b.body(resp.bytes().await?.to_vec())?)
        })
    }
}
