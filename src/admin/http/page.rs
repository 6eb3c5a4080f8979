//! The live status page: plain HTML, a small script and a style sheet compiled into the
//! binary (no CDN, no build step). The page signs in through the API and polls
//! `/api/v1/status` every second, so it changes without a reload. Every value is put in
//! the page as text (`textContent`), never as markup. And the plain-HTTP redirect.

use axum::Router;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};

const INDEX: &str = include_str!("page/status.html");
const SCRIPT: &str = include_str!("page/status.js");
const STYLE: &str = include_str!("page/status.css");

/// `GET /`.
pub async fn index() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX).into_response()
}

/// `GET /status.js`.
pub async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

/// `GET /status.css`.
pub async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// The host a plain-HTTP request named, without its port, if it is a plausible host name
/// or address (never echoed otherwise: no header injection into the Location).
pub(crate) fn requested_host(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let name = if let Some(rest) = host.strip_prefix('[') {
        format!("[{}]", rest.split(']').next()?)
    } else {
        host.split(':').next()?.to_owned()
    };
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    ok.then_some(name)
}

/// Plain HTTP: every request is sent to the HTTPS listener on `https_port` (R62); nothing
/// else is served in clear.
pub fn redirect_router(https_port: u16) -> Router {
    Router::new().fallback(move |headers: HeaderMap, uri: Uri| async move {
        let Some(host) = requested_host(&headers) else {
            return (
                StatusCode::BAD_REQUEST,
                "this port only redirects to HTTPS; send a Host header\n",
            )
                .into_response();
        };
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let port = if https_port == 443 {
            String::new()
        } else {
            format!(":{https_port}")
        };
        Redirect::permanent(&format!("https://{host}{port}{path}")).into_response()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redirect_names_only_a_plausible_host() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, v.parse().unwrap());
            requested_host(&m)
        };
        assert_eq!(h("switch.example:80").as_deref(), Some("switch.example"));
        assert_eq!(h("192.0.2.1").as_deref(), Some("192.0.2.1"));
        assert_eq!(h("[2001:db8::1]:80").as_deref(), Some("[2001:db8::1]"));
        assert_eq!(h("evil/path"), None);
        assert_eq!(h("a b"), None);
        assert_eq!(requested_host(&HeaderMap::new()), None);
    }
}
