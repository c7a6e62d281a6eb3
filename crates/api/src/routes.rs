//! The route table: every path and method the HTTP API serves, with the access class each is
//! meant to have. The router is built by iterating the table, so it cannot serve a route the table
//! lacks; tests (class agreement, guards, authentication) read the same table through `routes()`
//! and so cover a route added later without anyone listing it twice.

use std::collections::BTreeMap;

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;

use crate::class::Class;

/// The methods routes use. A closed set rather than `http::Method`, so turning one into a router
/// filter cannot fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum M {
    Get,
    Head,
    Post,
    Put,
    Delete,
}

impl M {
    pub fn method(self) -> Method {
        match self {
            M::Get => Method::GET,
            M::Head => Method::HEAD,
            M::Post => Method::POST,
            M::Put => Method::PUT,
            M::Delete => Method::DELETE,
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            M::Get => MethodFilter::GET,
            M::Head => MethodFilter::HEAD,
            M::Post => MethodFilter::POST,
            M::Put => MethodFilter::PUT,
            M::Delete => MethodFilter::DELETE,
        }
    }
}

/// One method of one route, as code can read it. `path` uses the router's syntax (`{name}` for a
/// path parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteInfo {
    pub path: &'static str,
    pub method: M,
    /// The class the route is meant to have. `class::classify` decides at run time; a test checks
    /// the two agree for every entry.
    pub class: Class,
}

impl RouteInfo {
    /// The path with every `{param}` replaced by `value`, for requests built from the table.
    pub fn example_path(&self, value: &str) -> String {
        let mut out = String::new();
        let mut rest = self.path;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            match rest[open..].find('}') {
                Some(close) => {
                    out.push_str(value);
                    rest = &rest[open + close + 1..];
                }
                None => {
                    rest = &rest[open..];
                    break;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// A table entry: what it is, and the handler serving it.
pub struct Route<S> {
    pub info: RouteInfo,
    handler: MethodRouter<S>,
}

/// A table entry for `handler` on `method path`, meant to be of class `class`.
pub fn route<S, H, T>(path: &'static str, method: M, class: Class, handler: H) -> Route<S>
where
    H: Handler<T, S>,
    T: 'static,
    S: Clone + Send + Sync + 'static,
{
    Route {
        info: RouteInfo {
            path,
            method,
            class,
        },
        handler: on(method.filter(), handler),
    }
}

/// The router serving exactly the table's routes. Entries of one path are merged into one method
/// router (axum answers 405 for the path's other methods, and HEAD on a GET route).
pub fn build<S>(table: Vec<Route<S>>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let mut by_path: BTreeMap<&'static str, MethodRouter<S>> = BTreeMap::new();
    for r in table {
        let mr = match by_path.remove(r.info.path) {
            Some(prev) => prev.merge(r.handler),
            None => r.handler,
        };
        by_path.insert(r.info.path, mr);
    }
    by_path
        .into_iter()
        .fold(Router::new(), |router, (path, mr)| router.route(path, mr))
}

/// The table without handlers.
pub fn infos<S>(table: &[Route<S>]) -> Vec<RouteInfo> {
    table.iter().map(|r| r.info).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_paths_fill_parameters() {
        let r = RouteInfo {
            path: "/v3/projects/{project}/timeSeries",
            method: M::Post,
            class: Class::Write,
        };
        assert_eq!(r.example_path("x"), "/v3/projects/x/timeSeries");
        let r = RouteInfo {
            path: "/api/v1/query",
            ..r
        };
        assert_eq!(r.example_path("x"), "/api/v1/query");
    }
}
