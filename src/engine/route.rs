//! What the engine knows of routes: each route's path and the options it overrides (limits,
//! permessage-deflate, idle timeout), and the decision both the workers and
//! [`ServerHandle::answer`](crate::ServerHandle::answer) make on an upgrade request: which
//! route serves it (or 404) and what permessage-deflate answer it gets.
//!
//! The handlers of the routes are the server layer's (`server/router.rs`); here a route is an
//! index. A connection keeps its route in `ConnIo::route`: 0 for the server-wide options (a
//! server without routes, and client connections), `i + 1` for `routes[i]`.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::Settings;
use crate::handler::Reject;
use crate::limits::Limits;
use crate::protocol::deflate::{negotiate, DeflateOptions, Params};
use crate::protocol::handshake::{ExtensionOffer, UpgradeRequest};

/// One route's path and the options it sets for its connections (`None`: the server's).
#[derive(Debug, Clone, Default)]
pub(crate) struct RouteSettings {
    /// The request path it serves, matched exactly (without the query).
    pub(crate) path: String,
    pub(crate) limits: Option<Limits>,
    /// `Some(None)`: permessage-deflate off on this route even if the server has it on.
    pub(crate) deflate: Option<Option<Arc<DeflateOptions>>>,
    pub(crate) idle_timeout: Option<Option<Duration>>,
}

/// What an upgrade request gets before the handler sees it: its route and, when both sides
/// want it, the permessage-deflate answer with the parameters in force.
#[derive(Debug, Clone)]
pub(crate) struct Decision {
    pub(crate) route: u16,
    pub(crate) deflate: Option<(ExtensionOffer, Params, Arc<DeflateOptions>)>,
}

impl Settings {
    /// The route serving `path`: 0 on a server without routes (whose single path, if set,
    /// must match), else the index of the matching route plus one.
    pub(crate) fn route_for(&self, path: &str) -> Option<u16> {
        if self.routes.is_empty() {
            return match &self.path {
                Some(p) if p != path => None,
                _ => Some(0),
            };
        }
        let i = self.routes.iter().position(|r| r.path == path)?;
        // The builder refuses more routes than fit (see `Builder::route`).
        u16::try_from(i + 1).ok()
    }

    fn route(&self, route: u16) -> Option<&RouteSettings> {
        self.routes.get(usize::from(route).checked_sub(1)?)
    }

    /// The protocol limits of connections on `route`.
    pub(crate) fn limits_for(&self, route: u16) -> Limits {
        self.route(route)
            .and_then(|r| r.limits)
            .unwrap_or(self.limits)
    }

    /// The permessage-deflate options of `route` (`None`: off).
    pub(crate) fn deflate_for(&self, route: u16) -> Option<&Arc<DeflateOptions>> {
        match self.route(route).and_then(|r| r.deflate.as_ref()) {
            Some(own) => own.as_ref(),
            None => self.deflate.as_ref(),
        }
    }

    /// The idle timeout of `route`.
    pub(crate) fn idle_timeout_for(&self, route: u16) -> Option<Duration> {
        self.route(route)
            .and_then(|r| r.idle_timeout)
            .unwrap_or(self.idle_timeout)
    }

    /// The route and deflate answer for a parsed upgrade request; a path that no route serves
    /// gets 404.
    pub(crate) fn decide(&self, request: &UpgradeRequest) -> Result<Decision, Reject> {
        let route = self
            .route_for(request.path())
            .ok_or_else(|| Reject::new(404).body("no websocket service at this path"))?;
        let deflate = self.deflate_for(route).and_then(|options| {
            negotiate::server_accept(request.extensions(), options)
                .map(|(answer, params)| (answer, params, options.clone()))
        });
        Ok(Decision { route, deflate })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str, deflate: bool) -> UpgradeRequest {
        let ext = if deflate {
            "Sec-WebSocket-Extensions: permessage-deflate\r\n"
        } else {
            ""
        };
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n"
        );
        UpgradeRequest::parse(head.as_bytes(), &Limits::DEFAULT)
            .unwrap()
            .unwrap()
            .0
    }

    fn routed() -> Settings {
        let mut s = Settings {
            deflate: Some(Arc::new(DeflateOptions::default())),
            ..Settings::default()
        };
        s.routes = vec![
            RouteSettings {
                path: "/a".into(),
                limits: Some(Limits {
                    max_message_size: 10,
                    ..Limits::DEFAULT
                }),
                ..RouteSettings::default()
            },
            RouteSettings {
                path: "/b".into(),
                deflate: Some(None),
                idle_timeout: Some(None),
                ..RouteSettings::default()
            },
        ];
        s
    }

    #[test]
    fn routes_are_matched_exactly_and_unknown_paths_get_404() {
        let s = routed();
        assert_eq!(s.decide(&request("/a", false)).unwrap().route, 1);
        assert_eq!(s.decide(&request("/b?x=1", false)).unwrap().route, 2);
        for path in ["/", "/a/", "/c", "/A"] {
            assert_eq!(s.decide(&request(path, false)).unwrap_err().status(), 404);
        }
    }

    #[test]
    fn a_route_overrides_the_server_options_it_sets_and_keeps_the_rest() {
        let s = routed();
        assert_eq!(s.limits_for(1).max_message_size, 10);
        assert_eq!(s.limits_for(2), Limits::DEFAULT);
        assert_eq!(s.limits_for(0), Limits::DEFAULT);
        assert!(s.decide(&request("/a", true)).unwrap().deflate.is_some());
        assert!(s.decide(&request("/b", true)).unwrap().deflate.is_none());
        assert_eq!(s.idle_timeout_for(1), s.idle_timeout);
        assert_eq!(s.idle_timeout_for(2), None);
    }

    #[test]
    fn without_routes_the_single_path_decides() {
        let mut s = Settings::default();
        assert_eq!(s.decide(&request("/anything", false)).unwrap().route, 0);
        s.path = Some("/ws".into());
        assert_eq!(s.decide(&request("/ws", false)).unwrap().route, 0);
        assert_eq!(
            s.decide(&request("/other", false)).unwrap_err().status(),
            404
        );
    }
}
