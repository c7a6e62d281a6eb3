//! The client handed to every outbound caller: reqwest's, plus what has to happen per request
//! rather than once per client (an OAuth2 token that expires and is renewed). Callers use it as
//! they would use reqwest's client; errors stay reqwest's.

use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{IntoUrl, Method};

use crate::oauth2::TokenSource;

#[derive(Clone, Debug)]
pub struct Client {
    inner: reqwest::Client,
    oauth2: Option<Arc<TokenSource>>,
}

impl From<reqwest::Client> for Client {
    fn from(inner: reqwest::Client) -> Self {
        Self {
            inner,
            oauth2: None,
        }
    }
}

impl Client {
    pub(crate) fn with_oauth2(inner: reqwest::Client, source: Option<TokenSource>) -> Self {
        Self {
            inner,
            oauth2: source.map(Arc::new),
        }
    }

    pub fn request<U: IntoUrl>(&self, method: Method, url: U) -> RequestBuilder {
        RequestBuilder {
            inner: self.inner.request(method, url),
            oauth2: self.oauth2.clone(),
        }
    }

    pub fn get<U: IntoUrl>(&self, url: U) -> RequestBuilder {
        self.request(Method::GET, url)
    }

    pub fn post<U: IntoUrl>(&self, url: U) -> RequestBuilder {
        self.request(Method::POST, url)
    }

    pub fn put<U: IntoUrl>(&self, url: U) -> RequestBuilder {
        self.request(Method::PUT, url)
    }

    pub fn delete<U: IntoUrl>(&self, url: U) -> RequestBuilder {
        self.request(Method::DELETE, url)
    }
}

/// reqwest's request builder; `send` adds the OAuth2 token when the client has one.
pub struct RequestBuilder {
    inner: reqwest::RequestBuilder,
    oauth2: Option<Arc<TokenSource>>,
}

impl RequestBuilder {
    fn map(self, f: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder) -> Self {
        Self {
            inner: f(self.inner),
            oauth2: self.oauth2,
        }
    }

    pub fn header<K, V>(self, key: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
    {
        self.map(|b| b.header(key, value))
    }

    pub fn headers(self, headers: HeaderMap) -> Self {
        self.map(|b| b.headers(headers))
    }

    pub fn body<T: Into<reqwest::Body>>(self, body: T) -> Self {
        self.map(|b| b.body(body))
    }

    pub fn timeout(self, timeout: std::time::Duration) -> Self {
        self.map(|b| b.timeout(timeout))
    }

    pub fn basic_auth<U: std::fmt::Display, P: std::fmt::Display>(
        self,
        username: U,
        password: Option<P>,
    ) -> Self {
        self.map(|b| b.basic_auth(username, password))
    }

    pub fn bearer_auth<T: std::fmt::Display>(self, token: T) -> Self {
        self.map(|b| b.bearer_auth(token))
    }

    pub async fn send(self) -> Result<reqwest::Response, reqwest::Error> {
        let Some(source) = self.oauth2 else {
            return self.inner.send().await;
        };
        let token = source.header().await?;
        let resp = self
            .inner
            .header(reqwest::header::AUTHORIZATION, token)
            .send()
            .await?;
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
            // Revoked or expired early: the next request fetches a new token instead of
            // repeating the refused one until its stated expiry.
            source.invalidate().await;
        }
        Ok(resp)
    }
}
