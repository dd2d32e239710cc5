//! The web UI: plain HTML, CSS and JavaScript modules from `web/ui`, embedded in the binary by
//! rust-embed (debug builds read them from disk, so an edit shows on reload). The UI talks only
//! to the public API; this module only serves its files.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use crate::error::ApiError;

#[derive(RustEmbed)]
#[folder = "ui/"]
struct Assets;

/// `GET /`: the single page; the views are routed in the page (`/#/logs?q=...`).
pub(crate) async fn index(headers: HeaderMap) -> Response {
    asset_response("index.html", &headers)
}

/// `GET /ui/{*path}`: a script, a style sheet or an icon.
pub(crate) async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    asset_response(&path, &headers)
}

fn asset_response(path: &str, headers: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no UI asset {path:?}"),
        )
        .into_response();
    };
    // Revalidated on every load (the UI changes with the binary), answered 304 when unchanged.
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..12]));
    let cached = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if cached {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type(path))], file.data).into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The page runs only its own scripts and talks only to this server; log lines are shown as
    // text, and this stops a line that got through as HTML from running anything.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

/// Scripts, styles, images and requests from this origin only; inline `style` attributes
/// (chart swatches, meters) are the one exception.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
    object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_known_type() {
        let assets: Vec<String> = Assets::iter().map(|name| name.to_string()).collect();
        assert!(assets.iter().any(|n| n == "index.html"));
        assert!(assets.iter().any(|n| n == "js/app.js"));
        for name in &assets {
            assert_ne!(
                content_type(name),
                "application/octet-stream",
                "{name} would be served without a type"
            );
        }
    }

    #[tokio::test]
    async fn the_page_is_served_with_its_type_a_policy_and_an_etag() {
        let page = index(HeaderMap::new()).await;
        assert_eq!(page.status(), StatusCode::OK);
        let h = page.headers();
        assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(
            h[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("script-src 'self';")
        );
        let etag = h[header::ETAG].clone();
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(index(again).await.status(), StatusCode::NOT_MODIFIED);
        let missing = asset(Path("js/nope.js".into()), HeaderMap::new()).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn index_references_only_embedded_files() {
        let index = String::from_utf8(Assets::get("index.html").unwrap().data.to_vec()).unwrap();
        for part in index.split("\"/ui/").skip(1) {
            let path = &part[..part.find('"').unwrap()];
            assert!(Assets::get(path).is_some(), "index.html links /ui/{path}");
        }
    }
}
