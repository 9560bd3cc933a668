//! What every page shares: the shell (company, time zone, who is signed in, the CSRF token, the
//! section shown), times in the company's time zone, field errors and the flash notice.

use std::collections::BTreeMap;

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use casebridge_app::AppError;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::error::UiError;
use crate::session::{self, Admin};
use crate::Ui;

/// The frame around every signed-in page.
#[derive(Debug, Clone)]
pub struct Shell {
    pub company: String,
    pub timezone: String,
    pub email: String,
    pub csrf: String,
    /// Which navigation entry is current (`integrations`, `webhooks`, …).
    pub section: &'static str,
    pub flash: Option<String>,
    tz: TimeZone,
}

/// The sections of the navigation, in order: (id, label, path).
pub const SECTIONS: &[(&str, &str, &str)] = &[
    ("integrations", "Integrations", "/ui/integrations"),
    ("webhooks", "Webhooks", "/ui/webhooks"),
    ("deliveries", "Deliveries", "/ui/deliveries"),
    ("event-types", "Event types", "/ui/event-types"),
    ("scheduling", "Scheduling", "/ui/scheduling"),
    ("lists", "Lists", "/ui/lists"),
];

impl Shell {
    pub fn new(admin: &Admin, section: &'static str) -> Self {
        let tz = TimeZone::get(&admin.company.timezone).unwrap_or(TimeZone::UTC);
        Self {
            company: admin.company.name.clone(),
            timezone: admin.company.timezone.clone(),
            email: admin.session.email.clone(),
            csrf: admin.session.csrf_token.clone(),
            section,
            flash: admin.flash.clone(),
            tz,
        }
    }

    pub fn sections(&self) -> &'static [(&'static str, &'static str, &'static str)] {
        SECTIONS
    }

    /// A time in the company's time zone, to the minute (`2026-12-02 09:14 EST`).
    pub fn local(&self, t: &Timestamp) -> String {
        t.to_zoned(self.tz.clone())
            .strftime("%Y-%m-%d %H:%M %Z")
            .to_string()
    }

    /// The same time in UTC, to the second, for `datetime` attributes and hover text.
    pub fn utc(&self, t: &Timestamp) -> String {
        t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    /// A time typed into a form: an RFC 3339 time, or a date and time (`2026-12-02T09:14`, as a
    /// `datetime-local` input sends it) in the company's time zone.
    pub fn parse_local(&self, raw: &str) -> Option<Timestamp> {
        let raw = raw.trim();
        if let Ok(t) = raw.parse::<Timestamp>() {
            return Some(t);
        }
        let dt = raw.parse::<jiff::civil::DateTime>().ok()?;
        dt.to_zoned(self.tz.clone()).ok().map(|z| z.timestamp())
    }

    /// A time as a `datetime-local` input shows it, in the company's time zone.
    pub fn input_value(&self, t: &Timestamp) -> String {
        t.to_zoned(self.tz.clone())
            .strftime("%Y-%m-%dT%H:%M:%S")
            .to_string()
    }

    pub fn local_opt(&self, t: &Option<Timestamp>) -> String {
        t.as_ref()
            .map_or_else(|| "never".to_owned(), |t| self.local(t))
    }
}

/// Errors of a submitted form, by field name, shown next to their fields.
#[derive(Debug, Clone, Default)]
pub struct FieldErrors {
    by_field: BTreeMap<String, String>,
    /// A problem with the form as a whole (shown above it).
    pub general: Option<String>,
}

impl FieldErrors {
    /// The message for `field`, or empty.
    pub fn get(&self, field: &str) -> &str {
        self.by_field.get(field).map_or("", String::as_str)
    }

    pub fn has(&self, field: &str) -> bool {
        self.by_field.contains_key(field)
    }

    pub fn is_empty(&self) -> bool {
        self.by_field.is_empty() && self.general.is_none()
    }

    pub fn general(message: impl Into<String>) -> Self {
        Self {
            by_field: BTreeMap::new(),
            general: Some(message.into()),
        }
    }

    /// Every message, general or of a field, under one key: for a form whose errors are shown
    /// together (a table of links, say) rather than next to each input.
    pub fn under(self, key: &str) -> Self {
        let mut all: Vec<String> = self.general.into_iter().collect();
        all.extend(self.by_field.into_values());
        let mut by_field = BTreeMap::new();
        if !all.is_empty() {
            by_field.insert(key.to_owned(), all.join("; "));
        }
        Self {
            by_field,
            general: None,
        }
    }

    /// Field errors from a service's answer, when it refused the input; any other error is
    /// returned as it is (it is not about the form).
    ///
    /// `rename` maps a service's field name to the form's (`event_types[2]` → `event_types`).
    pub fn from_app(e: AppError, rename: impl Fn(&str) -> String) -> Result<Self, UiError> {
        match e {
            AppError::Validation(v) => {
                let mut out = Self::default();
                for f in v.errors {
                    let key = rename(f.field.split('[').next().unwrap_or(&f.field));
                    out.by_field
                        .entry(key)
                        .and_modify(|m| {
                            m.push_str("; ");
                            m.push_str(&f.message);
                        })
                        .or_insert(f.message);
                }
                Ok(out)
            }
            AppError::Conflict(m) | AppError::BadRequest(m) | AppError::BadGateway(m) => {
                Ok(Self::general(m))
            }
            other => Err(other.into()),
        }
    }
}

/// Renders a page with a status.
pub fn render(status: StatusCode, page: &impl Template) -> Result<Response, UiError> {
    let html = page
        .render()
        .map_err(|e| UiError::App(AppError::Internal(format!("template: {e}"))))?;
    Ok((status, Html(html)).into_response())
}

/// Renders a page (200), clearing the flash notice it shows.
pub fn page(ui: &Ui, jar: CookieJar, page: &impl Template) -> Result<Response, UiError> {
    let html = render(StatusCode::OK, page)?;
    let jar = if jar.get(session::FLASH_COOKIE).is_some() {
        jar.add(session::removal(ui, session::FLASH_COOKIE))
    } else {
        jar
    };
    Ok((jar, html).into_response())
}

/// After a successful form: back to `to` (303), with a notice shown once there.
pub fn done(ui: &Ui, jar: CookieJar, to: &str, notice: impl Into<String>) -> Response {
    let notice = URL_SAFE_NO_PAD.encode(notice.into());
    let jar = jar.add(session::cookie(ui, session::FLASH_COOKIE, notice));
    (jar, axum::response::Redirect::to(to)).into_response()
}

/// A submitted form (`application/x-www-form-urlencoded`). One that cannot be read (a field
/// missing or malformed) answers a readable error page, like every other failure of a page.
pub struct Form<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for Form<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = UiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, UiError> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(v)) => Ok(Form(v)),
            Err(e) => Err(UiError::App(AppError::BadRequest(format!(
                "the form could not be read ({}); reload the page and send it again",
                e.body_text()
            )))),
        }
    }
}
