//! The Client Root: what an admin types into the connect form, turned into a base URL.

use url::Url;

/// The domain a bare firm subdomain belongs to (`yourfirm` → `https://yourfirm.lawruler.com`).
pub const LAWRULER_DOMAIN: &str = "lawruler.com";

/// Why a Client Root cannot be used. The message is meant for the admin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ClientRootError(pub String);

/// Turns a Client Root as typed into the base URL of the firm's Law Ruler portal.
///
/// Accepted forms:
/// - a firm subdomain, `yourfirm` → `https://yourfirm.lawruler.com/`;
/// - a host, `yourfirm.lawruler.com` → `https://yourfirm.lawruler.com/`;
/// - a full URL, `https://yourfirm.lawruler.com` or `http://127.0.0.1:8123` (tests, simulator).
///
/// Only the origin is kept: an admin who pastes the address of a page in their portal
/// (`https://yourfirm.lawruler.com/Dashboard.aspx?x=1`) gets the portal's root. The result always
/// has the path `/`. Credentials in the URL and schemes other than http(s) are refused. Whether
/// plain http or a private address may actually be reached is the HTTP client's policy, not
/// decided here.
pub fn normalize_client_root(raw: &str) -> Result<Url, ClientRootError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(ClientRootError("the Client Root is empty".into()));
    }
    let full = if raw.contains("://") {
        raw.to_owned()
    } else if raw.contains(['.', ':', '/']) {
        format!("https://{raw}")
    } else {
        if !is_dns_label(raw) {
            return Err(ClientRootError(format!(
                "\"{raw}\" is not a firm subdomain (letters, digits and hyphens, as in \
                 yourfirm for https://yourfirm.{LAWRULER_DOMAIN})"
            )));
        }
        format!("https://{}.{LAWRULER_DOMAIN}", raw.to_ascii_lowercase())
    };
    let url = Url::parse(&full)
        .map_err(|e| ClientRootError(format!("the Client Root is not a valid address: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ClientRootError(format!(
            "the Client Root must be an http or https address, not {}:",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ClientRootError("the Client Root has no host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ClientRootError(
            "the Client Root must not contain a user name or password".into(),
        ));
    }
    let mut origin = url;
    origin.set_path("/");
    origin.set_query(None);
    origin.set_fragment(None);
    Ok(origin)
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> String {
        normalize_client_root(raw).unwrap().to_string()
    }

    #[test]
    fn accepted_forms() {
        assert_eq!(ok("yourfirm"), "https://yourfirm.lawruler.com/");
        assert_eq!(ok("  YourFirm \n"), "https://yourfirm.lawruler.com/");
        assert_eq!(ok("your-firm2"), "https://your-firm2.lawruler.com/");
        assert_eq!(
            ok("yourfirm.lawruler.com"),
            "https://yourfirm.lawruler.com/"
        );
        assert_eq!(
            ok("https://yourfirm.lawruler.com"),
            "https://yourfirm.lawruler.com/"
        );
        assert_eq!(
            ok("https://yourfirm.lawruler.com/"),
            "https://yourfirm.lawruler.com/"
        );
        assert_eq!(
            ok("https://yourfirm.lawruler.com/Dashboard.aspx?tab=1#top"),
            "https://yourfirm.lawruler.com/"
        );
        assert_eq!(ok("http://127.0.0.1:8123"), "http://127.0.0.1:8123/");
        assert_eq!(ok("localhost:9000"), "https://localhost:9000/");
    }

    #[test]
    fn refused_forms() {
        for raw in [
            "",
            "   ",
            "your firm",
            "-yourfirm",
            "yourfirm-",
            "ftp://yourfirm.lawruler.com",
            "https://user:pw@yourfirm.lawruler.com",
            "https://",
            "file:///etc/passwd",
            "mailto:x@example.com",
        ] {
            assert!(
                normalize_client_root(raw).is_err(),
                "{raw:?} should be refused"
            );
        }
    }

    #[test]
    fn the_error_never_repeats_a_url_password() {
        let err = normalize_client_root("https://user:hunter2@yourfirm.lawruler.com").unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }
}
