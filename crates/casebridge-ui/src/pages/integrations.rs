//! Settings → Integrations: the cards, and each CRM's Configuration tab (connect, webhook URL,
//! toggles in the safe order, status-sync resume, checklist, sync health).

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::CookieJar;
use casebridge_app::integrations::{self as svc, IntegrationView, TogglesChange};
use casebridge_domain::crm_ops::ResumeMode;
use casebridge_domain::integrations::{Direction, Flow, Frequency, Provider, ToggleItem};
use casebridge_domain::sync::ConflictRule;
use serde_json::{Map, Value};

use crate::error::UiError;
use crate::session::Admin;
use crate::view::{done, page, render, FieldErrors, Form, Shell};
use crate::Ui;

pub fn routes() -> Router<Ui> {
    Router::new()
        .route("/integrations", get(list))
        .route("/integrations/{provider}", get(configuration))
        .route("/integrations/{provider}/connect", post(connect))
        .route("/integrations/{provider}/disconnect", post(disconnect))
        .route("/integrations/{provider}/toggles", post(toggles))
        .route("/integrations/{provider}/run", post(run_now))
        .route("/integrations/{provider}/status-sync", post(status_sync))
}

// ---- the cards ----

/// One card: a badge and the single most important next step.
pub struct CardView {
    pub name: String,
    pub href: String,
    pub badge: &'static str,
    pub badge_class: &'static str,
    pub next_step: String,
}

#[derive(Template)]
#[template(path = "integrations.html")]
struct ListPage {
    shell: Shell,
    cards: Vec<CardView>,
}

async fn list(State(ui): State<Ui>, jar: CookieJar, admin: Admin) -> Result<Response, UiError> {
    let o = svc::overview(&ui.app, admin.session.company_id).await?;
    let mut cards: Vec<CardView> = o
        .crms
        .iter()
        .map(|(p, view)| match view {
            Some(v) => crm_card(v),
            None => CardView {
                name: p.label().into(),
                href: format!("/ui/integrations/{}", p.as_str()),
                badge: "Not available",
                badge_class: "muted",
                next_step: format!("{} cannot be connected in this version yet.", p.label()),
            },
        })
        .collect();
    let connected = o.scheduling_connected;
    cards.push(CardView {
        name: "Scheduling".into(),
        href: "/ui/scheduling".into(),
        badge: if connected {
            "Connected"
        } else {
            "Not connected"
        },
        badge_class: if connected { "ok" } else { "muted" },
        next_step: if connected {
            "Turn on booking for the agents that should book appointments.".into()
        } else {
            "Paste the scheduling API key to let agents book appointments.".into()
        },
    });
    let (badge, badge_class, next_step) = match (o.webhooks, o.webhooks_active) {
        (0, _) => (
            "None yet",
            "muted",
            "Add a webhook to send platform events to your systems.".to_owned(),
        ),
        (_, 0) => (
            "All off",
            "warn",
            "Every webhook is turned off: turn one on, or nothing is delivered.".to_owned(),
        ),
        (_, n) => (
            "Active",
            "ok",
            format!("{n} webhook(s) on. See recent deliveries and replay failed ones."),
        ),
    };
    cards.push(CardView {
        name: "Webhooks".into(),
        href: "/ui/webhooks".into(),
        badge,
        badge_class,
        next_step,
    });
    page(
        &ui,
        jar,
        &ListPage {
            shell: Shell::new(&admin, "integrations"),
            cards,
        },
    )
}

fn crm_card(v: &IntegrationView) -> CardView {
    let p = v.provider;
    let problems = v.operations.failed + v.operations.blocked;
    let (badge, badge_class) = if !v.connected() {
        ("Not connected", "muted")
    } else if v.integration.config_error.is_some() || problems > 0 {
        ("Needs attention", "warn")
    } else if v.sync_unavailable.is_some() {
        // Its toggles do nothing, so "Paused" would suggest a switch that does not exist.
        ("Connected", "ok")
    } else if !v.toggles.enable_integration {
        ("Paused", "muted")
    } else {
        ("Connected", "ok")
    };
    CardView {
        name: p.label().into(),
        href: format!("/ui/integrations/{}", p.as_str()),
        badge,
        badge_class,
        next_step: next_step(v),
    }
}

/// The single most important thing to do next on an integration.
fn next_step(v: &IntegrationView) -> String {
    let p = v.provider.label();
    let c = &v.checklist;
    if !c.connected {
        format!("Connect {p}: enter the API credentials on the Configuration tab.")
    } else if let Some(e) = &v.integration.config_error {
        format!("Fix the connection: {e}")
    } else if let Some(why) = &v.sync_unavailable {
        if c.case_types_linked {
            format!("{why}. Case types are linked; nothing else can be set up yet.")
        } else {
            format!(
                "{why}. Meanwhile, load the {p} fields and link case types and statuses (CRM \
                 Mappings)."
            )
        }
    } else if v.operations.failed + v.operations.blocked > 0 {
        format!(
            "{} operation(s) could not be sent to {p}: review them on the Configuration tab.",
            v.operations.failed + v.operations.blocked
        )
    } else if !c.first_webhook_received && (!v.toggles.enable_integration || !v.toggles.receive) {
        // A webhook is accepted only while receiving is on; until then it would be ignored and
        // the checklist would never move on.
        format!(
            "Turn on Enable Integration and Receive data from the CRM (Sync settings), then paste \
             the webhook URL into {p}'s webhook setup."
        )
    } else if !c.first_webhook_received {
        format!("No webhook received from {p} yet: paste the webhook URL into {p}'s webhook setup.")
    } else if !c.case_types_linked {
        format!("Link every {p} case type to a platform case type (CRM Mappings).")
    } else if !c.sync_enabled {
        "Turn on Enable Integration to start syncing.".into()
    } else if !v.toggles.send {
        format!(
            "Receiving from {p} works. To send platform changes back, turn on Send data to the \
             CRM and the kinds to send."
        )
    } else {
        "Everything is set up. Watch sync health on the Configuration tab.".into()
    }
}

// ---- configuration tab ----

/// A field of a connect form, with the help an admin needs to find its value.
pub struct ConnectField {
    pub name: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    pub secret: bool,
    /// The value shown (masked for secrets) when connected.
    pub current: String,
}

/// The values each CRM's connect form asks for (LR1, SA1), in the order an admin finds them.
fn connect_fields(p: Provider, masked: Option<&Map<String, Value>>) -> Vec<ConnectField> {
    let spec: &[(&str, &str, &str, bool)] = match p {
        Provider::LawRuler => &[
            ("client_root", "Client Root", "Your Law Ruler address, for example https://yourfirm.lawruler.com.", false),
            ("username", "Username", "The Law Ruler user casebridge signs in as.", false),
            ("password", "Password", "That user's password.", true),
            ("client_secret", "Client Secret", "Setup → 3rd Party Integrations → API, in Law Ruler.", true),
            ("key", "Key", "Setup → 3rd Party Integrations, in Law Ruler (the integration key).", true),
        ],
        Provider::SmartAdvocate => &[
            ("base_url", "Host", "Your SmartAdvocate host only, for example https://yourfirm.smartadvocate.com (without /CaseSyncAPI).", false),
            ("username", "Username", "The SmartAdvocate API user.", false),
            ("password", "Password", "That user's password.", true),
        ],
    };
    spec.iter()
        .map(|&(name, label, help, secret)| ConnectField {
            name,
            label,
            help,
            secret,
            current: masked
                .and_then(|m| m.get(name))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "integration.html")]
struct ConfigPage {
    shell: Shell,
    v: IntegrationView,
    label: &'static str,
    slug: &'static str,
    fields: Vec<ConnectField>,
    errors: FieldErrors,
    toggles: Vec<ToggleItem>,
    directions: [Direction; 3],
    rules: [ConflictRule; 3],
    change_times: &'static str,
    frequencies: [Frequency; 3],
    next_step: String,
    /// Status changes held while status sync was off (LR11); `None` when the CRM has no
    /// status sync.
    held: Option<u64>,
}

impl ConfigPage {
    /// What is known of one permission connecting checks: `denied` (named by the connect error
    /// just shown), `passed` (that connect got as far as the permission checks, and this one
    /// was not denied), `passed_at_connect` (connected, so every check passed then), or
    /// `unchecked`.
    fn permission(&self, check: &str) -> &'static str {
        let said = self.errors.get("username");
        if said.contains(&format!("permission for {check};")) {
            "denied"
        } else if said.contains("lacks permission for ") {
            "passed"
        } else if self.v.connected() {
            "passed_at_connect"
        } else {
            "unchecked"
        }
    }

    /// The labels of the toggles `t` needs ("Enable Integration, Send data to the CRM"), as the
    /// admin reads them on this page, not their keys.
    fn needs(&self, t: &ToggleItem) -> String {
        t.gated_by
            .iter()
            .map(|key| {
                self.toggles
                    .iter()
                    .find(|o| o.key == *key)
                    .map_or(*key, |o| o.label)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

async fn config_page(
    ui: &Ui,
    admin: &Admin,
    p: Provider,
    errors: FieldErrors,
) -> Result<ConfigPage, UiError> {
    let company = admin.session.company_id;
    let v = svc::get(&ui.app, company, p).await?;
    let held = match svc::status_sync(&ui.app, company, p).await {
        Ok(s) => Some(s.held),
        Err(casebridge_app::AppError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    Ok(ConfigPage {
        shell: Shell::new(admin, "integrations"),
        label: p.label(),
        slug: p.as_str(),
        fields: connect_fields(p, v.credentials.as_ref()),
        toggles: v.toggles.listed(),
        directions: Direction::ALL,
        rules: ConflictRule::ALL,
        change_times: p.change_times(),
        frequencies: Frequency::ALL,
        next_step: next_step(&v),
        held,
        errors,
        v,
    })
}

async fn configuration(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Path(provider): Path<String>,
) -> Result<Response, UiError> {
    let p = svc::provider(&provider)?;
    let page_ = config_page(&ui, &admin, p, FieldErrors::default()).await?;
    page(&ui, jar, &page_)
}

async fn connect(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Path(provider): Path<String>,
    Form(form): Form<BTreeMap<String, String>>,
) -> Result<Response, UiError> {
    let p = svc::provider(&provider)?;
    let input: Map<String, Value> = connect_fields(p, None)
        .iter()
        .filter_map(|f| {
            form.get(f.name)
                .map(|v| (f.name.to_owned(), Value::String(v.trim().to_owned())))
        })
        .collect();
    let initial_sync = form.contains_key("initial_sync");
    let company = admin.session.company_id;
    match svc::connect(&ui.app, company, p, &Value::Object(input), initial_sync).await {
        Ok(v) => Ok(done(
            &ui,
            jar,
            &format!("/ui/integrations/{}", p.as_str()),
            match v.initial_import {
                Some(_) => format!(
                    "Connected to {}: the credentials were verified, and the initial sync \
                     started (the Imports tab shows its progress).",
                    p.label()
                ),
                None => format!("Connected to {}: the credentials were verified.", p.label()),
            },
        )),
        Err(e) => {
            let errors = match e {
                casebridge_app::AppError::Unavailable(m) => FieldErrors::general(format!(
                    "{} could not be reached: {m}. Nothing was saved; try again.",
                    p.label()
                )),
                other => FieldErrors::from_app(other, str::to_owned)?,
            };
            let mut page_ = config_page(&ui, &admin, p, errors).await?;
            // The values entered stay in the form, so only the wrong one is typed again; secrets
            // are never sent back to the browser.
            for f in page_.fields.iter_mut().filter(|f| !f.secret) {
                if let Some(v) = form.get(f.name) {
                    f.current = v.trim().to_owned();
                }
            }
            render(StatusCode::UNPROCESSABLE_ENTITY, &page_)
        }
    }
}

async fn disconnect(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Path(provider): Path<String>,
) -> Result<Response, UiError> {
    let p = svc::provider(&provider)?;
    svc::disconnect(&ui.app, admin.session.company_id, p).await?;
    Ok(done(
        &ui,
        jar,
        &format!("/ui/integrations/{}", p.as_str()),
        format!(
            "Disconnected from {}: the credentials were deleted; mappings and settings stay.",
            p.label()
        ),
    ))
}

/// The toggles form sends every toggle: a checked box is `on`, an unchecked one is absent.
async fn toggles(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Path(provider): Path<String>,
    Form(form): Form<BTreeMap<String, String>>,
) -> Result<Response, UiError> {
    let p = svc::provider(&provider)?;
    let on = |k: &str| Some(form.get(k).is_some_and(|v| v == "on" || v == "true"));
    let current = svc::get(&ui.app, admin.session.company_id, p)
        .await?
        .toggles;
    // Status sync is switched through its own dialog (held changes); the form leaves it alone.
    let change = TogglesChange {
        enable_integration: on("enable_integration"),
        receive: on("receive"),
        send: on("send"),
        send_mapped_fields: on("send_mapped_fields"),
        send_messages: on("send_messages"),
        send_call_records: on("send_call_records"),
        send_documents: on("send_documents"),
        sync_statuses: Some(current.sync_statuses),
        sync_enriched_phones: on("sync_enriched_phones"),
        // A form without a menu (an old page) leaves its setting as it is.
        direction: None,
        frequency: None,
        conflict_resolution: None,
    };
    let menus = (|| {
        let direction = form
            .get("direction")
            .map(|d| Direction::parse("direction", d))
            .transpose()?;
        let frequency = form
            .get("frequency")
            .map(|f| Frequency::parse("frequency", f))
            .transpose()?;
        let conflict_resolution = form
            .get("conflict_resolution")
            .map(|r| ConflictRule::parse("conflict_resolution", r))
            .transpose()?;
        Ok::<_, casebridge_domain::ValidationError>((direction, frequency, conflict_resolution))
    })();
    let change = match menus {
        Ok((direction, frequency, conflict_resolution)) => TogglesChange {
            direction,
            frequency,
            conflict_resolution,
            ..change
        },
        Err(e) => {
            let errors = FieldErrors::from_app(e.into(), str::to_owned)?.under("toggles");
            let page_ = config_page(&ui, &admin, p, errors).await?;
            return render(StatusCode::UNPROCESSABLE_ENTITY, &page_);
        }
    };
    match svc::change_settings(&ui.app, admin.session.company_id, p, &change).await {
        Ok(_) => Ok(done(
            &ui,
            jar,
            &format!("/ui/integrations/{}#toggles", p.as_str()),
            "Settings saved.",
        )),
        Err(e) => {
            let errors = FieldErrors::from_app(e, str::to_owned)?.under("toggles");
            let page_ = config_page(&ui, &admin, p, errors).await?;
            render(StatusCode::UNPROCESSABLE_ENTITY, &page_)
        }
    }
}

/// "Run now" (SYNC1): a pull, and every operation waiting for the next run sent now.
async fn run_now(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Path(provider): Path<String>,
) -> Result<Response, UiError> {
    let p = svc::provider(&provider)?;
    let r = svc::run_now(&ui.app, admin.session.company_id, p).await?;
    let pull = match &r.no_pull {
        None => "a pull was started".to_owned(),
        Some(why) => format!("no pull was started ({why})"),
    };
    Ok(done(
        &ui,
        jar,
        &format!("/ui/integrations/{}#toggles", p.as_str()),
        format!(
            "Run started: {pull}; {} waiting operation(s) are being sent.",
            r.released
        ),
    ))
}

/// Status sync on (with the held changes skipped or replayed) or off (LR11).
async fn status_sync(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Path(provider): Path<String>,
    Form(form): Form<BTreeMap<String, String>>,
) -> Result<Response, UiError> {
    let p = svc::provider(&provider)?;
    let enabled = form.get("enabled").is_some_and(|v| v == "true");
    let mode = match form.get("mode").map(String::as_str) {
        Some("retroactive") => Some(ResumeMode::Retroactive),
        Some("non_retroactive") => Some(ResumeMode::NonRetroactive),
        _ => None,
    };
    match svc::set_status_sync(&ui.app, admin.session.company_id, p, enabled, mode).await {
        Ok(s) => {
            let notice = match (enabled, s.replayed, s.skipped) {
                (false, _, _) => {
                    "Status sync is off: status changes are held until it is turned on again."
                        .to_owned()
                }
                (true, Some(r), Some(k)) if r > 0 => format!(
                    "Status sync is on: {r} held change(s) will be sent in order ({k} skipped)."
                ),
                (true, _, Some(k)) if k > 0 => {
                    format!("Status sync is on: {k} held change(s) were skipped.")
                }
                _ => "Status sync is on.".to_owned(),
            };
            Ok(done(
                &ui,
                jar,
                &format!("/ui/integrations/{}#status-sync", p.as_str()),
                notice,
            ))
        }
        Err(e) => {
            let errors = FieldErrors::from_app(e, str::to_owned)?.under("status_sync");
            let page_ = config_page(&ui, &admin, p, errors).await?;
            render(StatusCode::UNPROCESSABLE_ENTITY, &page_)
        }
    }
}
