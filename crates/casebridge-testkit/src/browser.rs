//! A minimal browser for admin UI tests: keeps cookies, follows no redirects (tests assert on
//! them), and reads the CSRF token a page's forms carry.

use std::collections::BTreeMap;
use std::sync::Mutex;

use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;

/// One page as the browser received it.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub html: String,
}

impl Page {
    /// Where a redirect points.
    pub fn location(&self) -> Option<&str> {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok())
    }

    /// The CSRF token of the page's forms (the first `name="csrf"` field).
    pub fn csrf(&self) -> String {
        let at = self
            .html
            .find(r#"name="csrf" value=""#)
            .unwrap_or_else(|| panic!("no CSRF field on this page:\n{}", self.html));
        let rest = &self.html[at + r#"name="csrf" value=""#.len()..];
        rest[..rest.find('"').expect("closing quote")].to_owned()
    }

    /// Asserts the status (showing the page when it differs) and returns the page.
    #[track_caller]
    pub fn expect(self, status: StatusCode) -> Self {
        assert_eq!(self.status, status, "{}", self.html);
        self
    }
}

/// Cookies by name, as a browser keeps them for one site.
pub struct Browser {
    base: String,
    http: reqwest::Client,
    cookies: Mutex<BTreeMap<String, String>>,
}

impl Browser {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookies: Mutex::new(BTreeMap::new()),
        }
    }

    /// The value of a cookie the site set, if any.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    /// Forgets every cookie (a new browser profile).
    pub fn clear_cookies(&self) {
        self.cookies.lock().unwrap().clear();
    }

    #[must_use = "a test that loads a page checks it"]
    pub async fn get(&self, path: &str) -> Page {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// Sends a form (`application/x-www-form-urlencoded`), as a browser does.
    #[must_use = "a test that sends a form checks the answer"]
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.send(self.http.post(format!("{}{path}", self.base)).form(fields))
            .await
    }

    /// Signs in through the sign-in page; returns the answer to the form (303 on success).
    #[must_use = "a test that signs in checks the answer"]
    pub async fn sign_in(&self, email: &str, password: &str) -> Page {
        let form = self.get("/ui/login").await.expect(StatusCode::OK);
        let csrf = form.csrf();
        self.post(
            "/ui/login",
            &[("csrf", &csrf), ("email", email), ("password", password)],
        )
        .await
    }

    async fn send(&self, mut req: reqwest::RequestBuilder) -> Page {
        let jar = self
            .cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        if !jar.is_empty() {
            req = req.header(COOKIE, jar);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        for set in headers.get_all(SET_COOKIE) {
            let set = set.to_str().expect("ascii cookie");
            let pair = set.split(';').next().unwrap_or_default();
            let (name, value) = pair.split_once('=').expect("name=value");
            let removed = set.to_ascii_lowercase().contains("max-age=0") || value.is_empty();
            let mut cookies = self.cookies.lock().unwrap();
            if removed {
                cookies.remove(name);
            } else {
                cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let html = resp.text().await.expect("body");
        Page {
            status,
            headers,
            html,
        }
    }
}
