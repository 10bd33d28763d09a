//! The web console at `/console`: a single page (plain HTML, CSS and JavaScript, no build step)
//! embedded in the binary, so it works offline and needs no second server. The page itself is
//! public; everything it shows comes from the `/v1` API, called with the API key the user signs
//! in with (kept in the browser's session storage and sent as a bearer token, never in a URL).
//!
//! Every asset is served with a strict content security policy: scripts, styles and requests
//! only from this origin, no inline script, no framing.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::state::AppState;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../console/index.html"),
};

const ASSETS: &[Asset] = &[
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../console/console.js"),
    },
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../console/console.css"),
    },
];

/// What the console's pages may load and call: this origin only.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data: blob:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The console's routes (outside `/v1`, without authentication: the page asks for a key).
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(index))
        .route("/console/assets/{name}", get(asset))
}

async fn index() -> Response {
    serve(&INDEX)
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|asset| asset.name == name) {
        Some(asset) => serve(asset),
        None => crate::Error::NotFound(format!("no console asset named {name:?}")).into_response(),
    }
}

fn serve(asset: &Asset) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The assets change with the binary; a revalidation is cheap on loopback and keeps an
    // upgraded server from running an old page.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    (StatusCode::OK, headers, asset.body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_page_names_is_embedded() {
        let page = std::str::from_utf8(INDEX.body).expect("utf-8 page");
        for asset in ASSETS {
            assert!(
                page.contains(&format!("assets/{}", asset.name)),
                "index.html does not load {}",
                asset.name
            );
        }
        assert!(
            !page.contains("<script>"),
            "no inline script (the policy forbids it)"
        );
    }
}
