//! Serving the web console (`tocsin-ui`'s embedded assets): every console path answers with the
//! one HTML page (the browser-side router shows the page the path names, so a shared URL or a
//! reload works), and `/assets/<name>` answers with the bundle in the encoding the browser accepts,
//! cached for good (the names carry a content hash) and revalidated by ETag.
//!
//! The route prefix (the path of `--web.external-url`, for a server reached as
//! `https://host/tocsin/`) is handled here too: [`strip_prefix`] lets requests under the prefix
//! reach the same routes, and the page is told the prefix so its links and API calls carry it.

use axum::extract::{Path, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The console's client-side pages. Each answers with the same HTML; the list is here rather than
/// a catch-all so that unknown paths stay 404 and every route has a class in the route table.
pub const PAGES: &[&str] = &[
    "/",
    "/alerts",
    "/alerts/{fingerprint}",
    "/graph",
    "/targets",
    "/rules",
    "/silences",
    "/silences/{id}",
    "/heartbeats",
    "/actions",
    "/status",
];

/// The path of the bundle's files.
pub const ASSETS: &str = "/assets/{file}";

/// The route prefix a request came in under, put in its extensions by [`strip_prefix`]. Absent:
/// no prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePrefix(pub String);

/// The route prefix for an external URL: its path without the trailing slash (`""` for the root
/// or for a string that is not a URL).
pub fn route_prefix(external_url: &str) -> String {
    url::Url::parse(external_url)
        .map(|u| u.path().trim_end_matches('/').to_string())
        .unwrap_or_default()
}

/// A request rewriter for the whole application: a path under `prefix` loses the prefix (so
/// `/tocsin/api/v1/query` reaches `/api/v1/query`, whether or not a proxy in front strips it),
/// and every request carries the prefix for the console page. With an empty prefix it only tags.
pub fn strip_prefix(prefix: String) -> impl FnMut(Request) -> Request + Clone + Send + 'static {
    move |mut req: Request| {
        if !prefix.is_empty() {
            let path = req.uri().path();
            let rest = match path.strip_prefix(prefix.as_str()) {
                Some("") => Some("/"),
                Some(r) if r.starts_with('/') => Some(r),
                _ => None,
            };
            if let Some(rest) = rest {
                let pq = match req.uri().query() {
                    Some(q) => format!("{rest}?{q}"),
                    None => rest.to_string(),
                };
                let mut parts = req.uri().clone().into_parts();
                if let Ok(pq) = pq.parse() {
                    parts.path_and_query = Some(pq);
                    if let Ok(uri) = axum::http::Uri::from_parts(parts) {
                        *req.uri_mut() = uri;
                    }
                }
            }
        }
        req.extensions_mut().insert(RoutePrefix(prefix.clone()));
        req
    }
}

/// `GET` on a console page: the HTML shell, never cached (it names the current bundle).
pub async fn index(req: Request) -> Response {
    let prefix = req
        .extensions()
        .get::<RoutePrefix>()
        .map(|p| p.0.as_str())
        .unwrap_or("");
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "same-origin"),
        ],
        tocsin_ui::index_html(prefix),
    )
        .into_response()
}

/// The encodings a client accepts, from `Accept-Encoding` (`q=0` refuses).
fn accepts(headers: &HeaderMap, coding: &str) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case(coding) || name == "*") && !refused
        })
}

/// `GET /assets/{file}`: a bundled file, brotli or gzip when accepted.
pub async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(a) = tocsin_ui::asset(&file) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no console asset {file:?} (the page may be from an older build: reload it)"),
        )
            .into_response();
    };
    let common = [
        (header::ETAG, HeaderValue::from_static(a.etag)),
        (header::VARY, HeaderValue::from_static("Accept-Encoding")),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        ),
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(a.content_type),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    let not_modified = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == a.etag
        });
    if not_modified {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    let (body, coding) = if accepts(&headers, "br") {
        (a.brotli, Some("br"))
    } else if accepts(&headers, "gzip") {
        (a.gzip, Some("gzip"))
    } else {
        (a.identity, None)
    };
    let mut resp = (common, body).into_response();
    if let Some(c) = coding {
        resp.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static(c));
    }
    resp
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    fn app(prefix: &str) -> Router {
        let mut r = Router::new().route(ASSETS, get(asset));
        for p in PAGES {
            r = r.route(p, get(index));
        }
        Router::new().fallback_service(r.map_request(strip_prefix(prefix.to_string())))
    }

    async fn call(app: Router, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut b = Request::builder().uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        app.oneshot(b.body(Body::empty()).unwrap()).await.unwrap()
    }

    async fn text(r: Response) -> String {
        let b = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8_lossy(&b).into_owned()
    }

    fn js() -> &'static tocsin_ui::Asset {
        tocsin_ui::ASSETS
            .iter()
            .find(|a| a.name.ends_with(".js"))
            .unwrap()
    }

    #[test]
    fn route_prefix_is_the_external_url_path() {
        assert_eq!(route_prefix("http://h:9090"), "");
        assert_eq!(route_prefix("http://h:9090/"), "");
        assert_eq!(route_prefix("https://h/tocsin/"), "/tocsin");
        assert_eq!(route_prefix("not a url"), "");
    }

    #[test]
    fn accept_encoding_honours_q_zero_and_wildcards() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT_ENCODING, v.parse().unwrap());
            m
        };
        assert!(accepts(&h("gzip, deflate, br"), "br"));
        assert!(!accepts(&h("gzip;q=1, br;q=0"), "br"));
        assert!(accepts(&h("gzip;q=1, br;q=0"), "gzip"));
        assert!(accepts(&h("*"), "gzip"));
        assert!(!accepts(&HeaderMap::new(), "gzip"));
    }

    #[tokio::test]
    async fn pages_answer_with_the_shell_at_root_and_under_the_prefix() {
        for path in ["/", "/graph?expr=up", "/alerts/00ff", "/silences/new"] {
            let r = call(app(""), path, &[]).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
            assert!(text(r).await.contains("\"/assets/app."), "{path}");
        }
        for path in ["/tocsin", "/tocsin/", "/tocsin/targets", "/targets"] {
            let r = call(app("/tocsin"), path, &[]).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            let body = text(r).await;
            assert!(body.contains("\"/tocsin/assets/app."), "{path}");
            assert!(body.contains("content=\"/tocsin\""), "{path}");
        }
        // A path that only starts with the prefix's characters is not under it.
        let r = call(app("/tocsin"), "/tocsinx/graph", &[]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = call(app(""), "/nothing-here", &[]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn assets_are_precompressed_cached_and_revalidated() {
        let a = js();
        let path = format!("/assets/{}", a.name);
        let r = call(app(""), &path, &[("accept-encoding", "gzip, br")]).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "br");
        assert_eq!(r.headers()[header::ETAG], a.etag);
        assert!(r.headers()[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("immutable"));
        let b = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(&b[..], a.brotli);

        let r = call(
            app("/p"),
            &format!("/p{path}"),
            &[("accept-encoding", "gzip")],
        )
        .await;
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
        let b = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&b[..]), &mut out).unwrap();
        assert_eq!(out, a.identity);

        let r = call(app(""), &path, &[]).await;
        assert!(r.headers().get(header::CONTENT_ENCODING).is_none());
        assert!(r.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript"));

        let r = call(app(""), &path, &[("if-none-match", a.etag)]).await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        let r = call(app(""), "/assets/app.0.js", &[]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
}
