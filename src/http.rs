//! Plain HTTP on a WebSocket port: the request a server that is not asked to upgrade sees, and
//! the response it gives instead of `426 Upgrade Required` (health checks, a status page, a
//! redirect). Set with [`Builder::http`](crate::server::Builder::http).
//!
//! A leaf module: the engine (which parses the request and writes the response on the worker)
//! and the server's builder (which keeps the function) both use it.
//!
//! The response always closes the connection (`Connection: close`): the port serves
//! WebSockets, and a plain request is answered once. A request body is not read.

use std::fmt;
use std::sync::Arc;

use crate::limits::Limits;

/// A plain HTTP/1.x request (a `GET /health` from a load balancer, a browser asking for a
/// page): its method, target and headers. The body, if any, is not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    method: String,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
}

impl HttpRequest {
    /// Parses a complete request head from `buf`, within `limits` (`max_head_size`,
    /// `max_headers`). `None`: not a complete, valid head.
    pub(crate) fn parse(buf: &[u8], limits: &Limits) -> Option<HttpRequest> {
        let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers.min(1024)];
        let mut req = httparse::Request::new(&mut headers);
        let end = buf.len().min(limits.max_head_size);
        match req.parse(&buf[..end]) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return None,
        }
        Some(HttpRequest {
            method: req.method?.to_owned(),
            target: req.path?.to_owned(),
            headers: req
                .headers
                .iter()
                .map(|h| (h.name.to_owned(), h.value.to_owned()))
                .collect(),
        })
    }

    /// The method: `GET`, `HEAD`, `POST`…
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The query after `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// A header's value (the first, if repeated), by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Every header, in the order sent.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }
}

/// The answer to a plain HTTP request.
///
/// # Examples
///
/// ```
/// use wsx::HttpResponse;
///
/// let ok = HttpResponse::new(200).header("Cache-Control", "no-store").body("up\n");
/// assert_eq!(ok.status(), 200);
/// let page = HttpResponse::html("<!doctype html><p>hello</p>");
/// assert_eq!(page.status(), 200);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    content_type: &'static str,
}

impl HttpResponse {
    /// A response with `status` (100–999 are kept; anything else becomes 500) and an empty
    /// plain-text body.
    pub fn new(status: u16) -> Self {
        HttpResponse {
            status: if (100..=999).contains(&status) {
                status
            } else {
                500
            },
            headers: Vec::new(),
            body: Vec::new(),
            content_type: "text/plain; charset=utf-8",
        }
    }

    /// `200 OK` with an HTML page.
    pub fn html(page: impl Into<Vec<u8>>) -> Self {
        let mut r = HttpResponse::new(200).body(page);
        r.content_type = "text/html; charset=utf-8";
        r
    }

    /// Sets the body (sent with its `Content-Length`).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Adds a header. A name or value that could break the response (CR, LF, a colon in the
    /// name, an empty name) is dropped, and so are the headers the response writes itself
    /// (`Content-Length`, `Connection`).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Appends the complete response to `out`; `head_only` (a `HEAD` request) leaves out the
    /// body but keeps its length.
    pub(crate) fn write(&self, head_only: bool, out: &mut Vec<u8>) {
        let phrase = crate::protocol::handshake::reason_phrase(self.status);
        out.extend_from_slice(format!("HTTP/1.1 {} {}\r\n", self.status, phrase).as_bytes());
        let mut typed = false;
        for (name, value) in &self.headers {
            if !header_is_safe(name, value) {
                continue;
            }
            if name.eq_ignore_ascii_case("content-length")
                || name.eq_ignore_ascii_case("connection")
            {
                continue;
            }
            typed |= name.eq_ignore_ascii_case("content-type");
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        if !typed {
            out.extend_from_slice(format!("Content-Type: {}\r\n", self.content_type).as_bytes());
        }
        out.extend_from_slice(
            format!(
                "Connection: close\r\nContent-Length: {}\r\n\r\n",
                self.body.len()
            )
            .as_bytes(),
        );
        if !head_only {
            out.extend_from_slice(&self.body);
        }
    }
}

/// Whether a header can go into a response as it is: a non-empty name without a colon, and
/// neither name nor value with CR or LF (which would split the response).
pub(crate) fn header_is_safe(name: &str, value: &str) -> bool {
    let breaks = |s: &str| s.bytes().any(|b| b == b'\r' || b == b'\n');
    !name.is_empty() && !name.contains(':') && !breaks(name) && !breaks(value)
}

/// What [`Builder::http`](crate::server::Builder::http) takes.
type Answer = dyn Fn(&HttpRequest) -> Option<HttpResponse> + Send + Sync;

/// The function that answers plain HTTP requests, kept in the server's settings.
#[derive(Clone)]
pub(crate) struct HttpFallback(pub(crate) Arc<Answer>);

impl fmt::Debug for HttpFallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HttpFallback(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_plain_request() {
        let r = HttpRequest::parse(
            b"GET /health?deep=1 HTTP/1.1\r\nHost: x\r\nX-A: b\r\n\r\n",
            &Limits::DEFAULT,
        )
        .unwrap();
        assert_eq!(r.method(), "GET");
        assert_eq!(r.path(), "/health");
        assert_eq!(r.query(), Some("deep=1"));
        assert_eq!(r.header("x-a"), Some(&b"b"[..]));
        assert_eq!(r.headers().count(), 2);
        assert!(HttpRequest::parse(b"GET / HTTP/1.1\r\nHost: x\r\n", &Limits::DEFAULT).is_none());
        assert!(HttpRequest::parse(b"\x16\x03\x01garbage\r\n\r\n", &Limits::DEFAULT).is_none());
    }

    #[test]
    fn writes_a_closing_response_and_drops_headers_that_break_it() {
        let r = HttpResponse::new(204)
            .header("X-Ok", "1")
            .header("Bad\r\nName", "x")
            .header("X-Split", "a\r\nInjected: yes")
            .header("Content-Length", "999")
            .body("hi");
        let mut out = Vec::new();
        r.write(false, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 204 "), "{text}");
        assert!(text.contains("X-Ok: 1\r\n"));
        assert!(!text.contains("Injected"));
        assert!(!text.contains("999"));
        assert!(
            text.ends_with("Connection: close\r\nContent-Length: 2\r\n\r\nhi"),
            "{text}"
        );
        let mut head = Vec::new();
        r.write(true, &mut head);
        assert!(head.ends_with(b"Content-Length: 2\r\n\r\n"));
        assert_eq!(HttpResponse::new(42).status(), 500);
    }
}
