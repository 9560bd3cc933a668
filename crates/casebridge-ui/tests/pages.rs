//! The admin UI through the real router and server, on both backends: sign-in and sessions,
//! CSRF on every form, the integrations cards and the Configuration tab, company isolation.

use std::time::Duration;

use casebridge_sim::lawruler::LawRulerSim;
use casebridge_testkit::{Browser, TestApp};
use reqwest::StatusCode;
use scraper::{Html, Selector};

fn select<'a>(doc: &'a Html, css: &str) -> Vec<scraper::ElementRef<'a>> {
    doc.select(&Selector::parse(css).expect("selector"))
        .collect()
}

fn texts(doc: &Html, css: &str) -> Vec<String> {
    select(doc, css)
        .into_iter()
        .map(|e| e.text().collect::<String>().trim().to_owned())
        .collect()
}

async fn without_a_session_every_page_sends_the_browser_to_sign_in(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let b = Browser::new(&app.base);
    let root = b.get("/").await.expect(StatusCode::SEE_OTHER);
    assert_eq!(root.location(), Some("/ui/"));
    for path in ["/ui/integrations", "/ui/integrations/lawruler"] {
        let r = b.get(path).await.expect(StatusCode::SEE_OTHER);
        let to = r.location().unwrap();
        assert!(to.starts_with("/ui/login?next="), "{path} -> {to}");
        assert!(to.contains(&path.replace('/', "%2F")), "{to}");
    }
    // A form sent without a session changes nothing and goes to sign-in too.
    let r = b
        .post(
            "/ui/integrations/lawruler/toggles",
            &[("enable_integration", "on")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().unwrap().starts_with("/ui/login"));
    // Sign-in page: a real form with its CSRF token; no navigation to other screens.
    let login = b.get("/ui/login").await.expect(StatusCode::OK);
    let doc = Html::parse_document(&login.html);
    assert_eq!(
        select(&doc, "form[action='/ui/login'][method=post]").len(),
        1
    );
    assert!(!login.csrf().is_empty());
    assert!(
        select(&doc, "label[for=email]").len() == 1
            && select(&doc, "label[for=password]").len() == 1
    );
}
casebridge_testkit::backend_test!(without_a_session_every_page_sends_the_browser_to_sign_in);

async fn sign_in_sets_a_strict_cookie_and_refuses_wrong_passwords_then_locks(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    app.admin_user(app.company_id, "Ann@Firm.test", "correct horse battery")
        .await;
    let b = Browser::new(&app.base);
    let wrong = b.sign_in("ann@firm.test", "wrong password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(
        wrong.html.contains("The email or password is not right"),
        "{}",
        wrong.html
    );
    assert!(b.cookie("cb_session").is_none());
    // An unknown email reads exactly the same.
    let unknown = b.sign_in("nobody@firm.test", "wrong password").await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);

    // The right password, email in another case: signed in, to the page asked for.
    let form = b
        .get("/ui/login?next=/ui/integrations/lawruler")
        .await
        .expect(StatusCode::OK);
    let ok = b
        .post(
            "/ui/login",
            &[
                ("csrf", &form.csrf()),
                ("email", " ANN@firm.test"),
                ("password", "correct horse battery"),
                ("next", "/ui/integrations/lawruler"),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.html);
    assert_eq!(ok.location(), Some("/ui/integrations/lawruler"));
    let set = ok
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("cb_session="))
        .expect("session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/ui"] {
        assert!(set.contains(flag), "{flag} missing: {set}");
    }
    assert_eq!(b.get("/ui/integrations").await.status, StatusCode::OK);

    // Five failures in a row lock the email, even for the right password afterwards.
    let other = Browser::new(&app.base);
    for _ in 0..4 {
        assert_eq!(
            other.sign_in("ann@firm.test", "guess").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let locked = other.sign_in("ann@firm.test", "guess").await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        locked.html.contains("Too many failed sign-ins"),
        "{}",
        locked.html
    );
    let still = other
        .sign_in("ann@firm.test", "correct horse battery")
        .await;
    assert_eq!(
        still.status,
        StatusCode::TOO_MANY_REQUESTS,
        "locked out for a while"
    );
    assert!(other.cookie("cb_session").is_none());
    // The lock ends by itself, and the count starts again: one more failure does not lock.
    app.advance(Duration::from_secs(16 * 60));
    assert_eq!(
        other.sign_in("ann@firm.test", "guess").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        other
            .sign_in("ann@firm.test", "correct horse battery")
            .await
            .status,
        StatusCode::SEE_OTHER
    );
}
casebridge_testkit::backend_test!(
    sign_in_sets_a_strict_cookie_and_refuses_wrong_passwords_then_locks
);

async fn sign_in_never_redirects_off_the_ui(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    app.admin_user(app.company_id, "ann@firm.test", "correct horse battery")
        .await;
    for next in [
        "https://evil.test/",
        "//evil.test/ui/",
        "/\\evil.test",
        "/api/v1/cases",
    ] {
        let b = Browser::new(&app.base);
        let form = b.get("/ui/login").await.expect(StatusCode::OK);
        let r = b
            .post(
                "/ui/login",
                &[
                    ("csrf", &form.csrf()),
                    ("email", "ann@firm.test"),
                    ("password", "correct horse battery"),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(r.location(), Some("/ui/"), "next={next}");
    }
}
casebridge_testkit::backend_test!(sign_in_never_redirects_off_the_ui);

async fn a_form_without_the_session_s_csrf_token_is_refused_and_changes_nothing(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    app.lawruler_connected_offline(app.company_id, &app.api_key)
        .await;
    let b = app.admin_browser().await;
    let page = b
        .get("/ui/integrations/lawruler")
        .await
        .expect(StatusCode::OK);
    let csrf = page.csrf();
    // Every form on the page carries the token.
    let doc = Html::parse_document(&page.html);
    let token = Selector::parse("input[type=hidden][name=csrf]").unwrap();
    let forms = select(&doc, "form[method=post]");
    assert!(
        forms.len() >= 4,
        "connect, disconnect, toggles, status sync, sign out"
    );
    for form in forms {
        let values: Vec<_> = form
            .select(&token)
            .map(|i| i.value().attr("value").unwrap())
            .collect();
        assert_eq!(
            values,
            [csrf.as_str()],
            "form without the token: {}",
            form.html()
        );
    }
    for bad in [None, Some("wrong"), Some("")] {
        let mut fields = vec![("receive", "on")];
        if let Some(t) = bad {
            fields.push(("csrf", t));
        }
        let r = b.post("/ui/integrations/lawruler/toggles", &fields).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{bad:?}");
        assert!(r.html.contains("nothing was changed"), "{}", r.html);
    }
    // Another admin's token (another session) does not work either.
    let other = app.admin_browser().await;
    let theirs = other.get("/ui/integrations").await.csrf();
    assert_ne!(theirs, csrf);
    let r = b
        .post("/ui/integrations/lawruler/toggles", &[("csrf", &theirs)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let settings = app
        .get("/api/v1/integrations/lawruler")
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        settings.body["settings"]["receive"], true,
        "unchanged: {}",
        settings.text
    );
    assert_eq!(
        settings.body["settings"]["enable_integration"], true,
        "unchanged"
    );

    // A file upload (multipart, streamed) carries the token in its URL; without it, 403.
    let cookie = format!("cb_session={}", b.cookie("cb_session").unwrap());
    let upload = |path: String| {
        let form = reqwest::multipart::Form::new().text("receive", "on");
        reqwest::Client::new()
            .post(app.url(&path))
            .header("cookie", cookie.clone())
            .multipart(form)
            .send()
    };
    let r = upload("/ui/integrations/lawruler/toggles".into())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = upload("/ui/integrations/lawruler/toggles?csrf=wrong".into())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = upload(format!("/ui/integrations/lawruler/toggles?csrf={csrf}"))
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "past the CSRF check, refused as not a form"
    );
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("the form could not be read"));

    // The token as a header works (htmx sends it so), as does the form field.
    let r = b
        .post(
            "/ui/integrations/lawruler/toggles",
            &[("csrf", &csrf), ("enable_integration", "on")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.html);
    let settings = app
        .get("/api/v1/integrations/lawruler")
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        settings.body["settings"]["receive"], false,
        "unchecked box turned off: {}",
        settings.text
    );
    assert_eq!(settings.body["settings"]["enable_integration"], true);
    // The notice shows once, on the page redirected to.
    let after = b
        .get("/ui/integrations/lawruler")
        .await
        .expect(StatusCode::OK);
    assert!(after.html.contains("Settings saved."));
    let again = b
        .get("/ui/integrations/lawruler")
        .await
        .expect(StatusCode::OK);
    assert!(!again.html.contains("Settings saved."));
}
casebridge_testkit::backend_test!(
    a_form_without_the_session_s_csrf_token_is_refused_and_changes_nothing
);

async fn a_session_ends_on_sign_out_and_after_idling(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let b = app.admin_browser().await;
    b.get("/ui/integrations").await.expect(StatusCode::OK);
    // Requests keep a session alive; idling past the timeout ends it.
    app.advance(Duration::from_secs(20 * 60));
    b.get("/ui/integrations").await.expect(StatusCode::OK);
    app.advance(Duration::from_secs(20 * 60));
    b.get("/ui/integrations").await.expect(StatusCode::OK);
    app.advance(Duration::from_secs(31 * 60));
    let r = b
        .get("/ui/integrations")
        .await
        .expect(StatusCode::SEE_OTHER);
    assert!(r.location().unwrap().starts_with("/ui/login"));

    let b = app.admin_browser().await;
    let page = b.get("/ui/integrations").await.expect(StatusCode::OK);
    let old = b.cookie("cb_session").unwrap();
    let out = b
        .post("/ui/logout", &[("csrf", &page.csrf())])
        .await
        .expect(StatusCode::SEE_OTHER);
    assert_eq!(out.location(), Some("/ui/login"));
    assert!(b.cookie("cb_session").is_none(), "cookie removed");
    // The old cookie value no longer opens a session: it was ended on the server.
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/ui/integrations"))
        .header("cookie", format!("cb_session={old}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}
casebridge_testkit::backend_test!(a_session_ends_on_sign_out_and_after_idling);

async fn integrations_cards_show_a_badge_and_the_next_step(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let b = app.admin_browser().await;
    let page = b.get("/ui/integrations").await.expect(StatusCode::OK);
    let doc = Html::parse_document(&page.html);
    assert_eq!(
        texts(&doc, ".card h2"),
        ["Law Ruler", "SmartAdvocate", "Scheduling", "Webhooks"]
    );
    let badges = texts(&doc, ".card .badge");
    assert_eq!(badges[0], "Not connected");
    assert!(texts(&doc, ".card .next-step")[0].starts_with("Connect Law Ruler"));
    assert!(
        page.html.contains("Test Firm"),
        "the company is named in the header"
    );
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert!(page.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    // htmx would add an inline <style> for its indicators, which that CSP blocks (a console
    // error on every page): the layout turns it off.
    let config = select(&doc, "meta[name=htmx-config]");
    assert_eq!(config.len(), 1, "{}", page.html);
    let config: serde_json::Value =
        serde_json::from_str(config[0].value().attr("content").unwrap()).unwrap();
    assert_eq!(config["includeIndicatorStyles"], false);

    // SmartAdvocate's tab asks for its own values, and has the status sync section (its
    // status changes are held while sending is off, like Law Ruler's).
    let sa = b
        .get("/ui/integrations/smartadvocate")
        .await
        .expect(StatusCode::OK);
    let doc = Html::parse_document(&sa.html);
    assert_eq!(
        texts(&doc, "#connect-form label"),
        [
            "Host",
            "Username",
            "Password",
            "Bring in the existing SmartAdvocate records now (initial sync)"
        ]
    );
    assert!(sa.html.contains("without /CaseSyncAPI"));
    assert!(!select(&doc, "#status-sync").is_empty());
    // An unknown integration or page is an HTML 404 page.
    let nope = b.get("/ui/integrations/salesforce").await;
    assert_eq!(nope.status, StatusCode::NOT_FOUND);
    assert!(
        nope.html.contains("no integration `salesforce`"),
        "{}",
        nope.html
    );
    assert_eq!(
        b.get("/ui/no-such-page").await.status,
        StatusCode::NOT_FOUND
    );

    // The Webhooks card: none, all off, then on.
    let cards = Html::parse_document(&b.get("/ui/integrations").await.expect(StatusCode::OK).html);
    assert_eq!(texts(&cards, ".card .badge")[3], "None yet");
    let hook = app
        .post(
            "/api/v1/webhooks",
            serde_json::json!({"name": "Firm", "url": "http://127.0.0.1:9/x", "active": false}),
        )
        .await;
    assert_eq!(hook.status, StatusCode::CREATED, "{}", hook.text);
    let cards = Html::parse_document(&b.get("/ui/integrations").await.expect(StatusCode::OK).html);
    assert_eq!(texts(&cards, ".card .badge")[3], "All off");
    let id = hook.body["id"].as_str().unwrap();
    app.patch(
        &format!("/api/v1/webhooks/{id}"),
        serde_json::json!({"active": true}),
    )
    .await
    .expect(StatusCode::OK);
    let cards = Html::parse_document(&b.get("/ui/integrations").await.expect(StatusCode::OK).html);
    assert_eq!(texts(&cards, ".card .badge")[3], "Active");

    app.lawruler_connected_offline(app.company_id, &app.api_key)
        .await;
    let page = b.get("/ui/integrations").await.expect(StatusCode::OK);
    let doc = Html::parse_document(&page.html);
    assert_eq!(texts(&doc, ".card .badge")[0], "Connected");
    assert!(
        texts(&doc, ".card .next-step")[0].contains("No webhook received from Law Ruler yet"),
        "{:?}",
        texts(&doc, ".card .next-step")
    );
}
casebridge_testkit::backend_test!(integrations_cards_show_a_badge_and_the_next_step);

async fn the_configuration_tab_lists_toggles_in_the_safe_order_and_masks_secrets(
    backend: casebridge_testkit::TestBackend,
) {
    let lr = LawRulerSim::new().start().await;
    let app = TestApp::start(backend).await;
    let b = app.admin_browser().await;
    let page = b
        .get("/ui/integrations/lawruler")
        .await
        .expect(StatusCode::OK);
    let csrf = page.csrf();
    // A wrong value is named next to its field, and nothing is stored.
    let wrong = b
        .post(
            "/ui/integrations/lawruler/connect",
            &[
                ("csrf", &csrf),
                ("client_root", &lr.base_url),
                ("username", "demo"),
                ("password", "demo-password"),
                ("client_secret", "demo-secret"),
                ("key", "bad-key"),
            ],
        )
        .await;
    assert_eq!(
        wrong.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        wrong.html
    );
    let doc = Html::parse_document(&wrong.html);
    let err = texts(&doc, "#key-error");
    assert_eq!(err.len(), 1, "{}", wrong.html);
    assert!(!err[0].is_empty());
    assert_eq!(select(&doc, "#f-key[aria-invalid=true]").len(), 1);
    // What was typed stays, but secrets are never sent back.
    let value = |id: &str| select(&doc, id)[0].value().attr("value").map(str::to_owned);
    assert_eq!(
        value("#f-client_root").as_deref(),
        Some(lr.base_url.as_str())
    );
    assert_eq!(value("#f-username").as_deref(), Some("demo"));
    for id in ["#f-password", "#f-client_secret", "#f-key"] {
        assert_eq!(value(id), None, "{id} has a value");
    }
    assert!(!wrong.html.contains("demo-password") && !wrong.html.contains("bad-key"));
    let view = app
        .get("/api/v1/integrations/lawruler")
        .await
        .expect(StatusCode::OK);
    assert_eq!(view.body["status"], "not_connected");

    let ok = b
        .post(
            "/ui/integrations/lawruler/connect",
            &[
                ("csrf", &csrf),
                ("client_root", &lr.base_url),
                ("username", "demo"),
                ("password", "demo-password"),
                ("client_secret", "demo-secret"),
                ("key", "demo-key"),
                ("initial_sync", "on"),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.html);
    let page = b
        .get("/ui/integrations/lawruler")
        .await
        .expect(StatusCode::OK);
    assert!(page.html.contains("Connected to Law Ruler"));
    assert!(
        page.html.contains("the initial sync started"),
        "the box starts the initial sync"
    );
    let imports = app
        .get("/api/v1/integrations/lawruler/import")
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        imports.body["data"][0]["source"], "lawruler_api",
        "{}",
        imports.text
    );
    for secret in ["demo-password", "demo-secret", "demo-key"] {
        assert!(!page.html.contains(secret), "{secret} rendered");
    }
    let doc = Html::parse_document(&page.html);
    // Receiving is still off: a webhook would be ignored, so that comes first.
    assert!(
        texts(&doc, "#next-step")[0].contains("Turn on Enable Integration and Receive data"),
        "{:?}",
        texts(&doc, "#next-step")
    );
    let labels = texts(&doc, "#toggles li label");
    assert_eq!(
        &labels[..7],
        [
            "Enable Integration",
            "Receive data from the CRM",
            "Send data to the CRM",
            "Send mapped fields",
            "Send messages",
            "Send call records",
            "Send documents"
        ]
    );
    // What each needs is named as the page names it, not by its key.
    let needs = texts(&doc, "#t-send_messages-d");
    assert!(
        needs[0].ends_with("Needs: Enable Integration, Send data to the CRM."),
        "{needs:?}"
    );
    assert!(
        !page.html.contains("enable_integration,")
            && !page.html.contains("Needs: enable_integration")
    );
    let url = select(&doc, "#webhook-url")[0]
        .value()
        .attr("value")
        .unwrap()
        .to_owned();
    let api = app
        .get("/api/v1/integrations/lawruler")
        .await
        .expect(StatusCode::OK);
    assert_eq!(api.body["webhook_url"], url.as_str());
    assert_eq!(select(&doc, "button[data-copy=webhook-url]").len(), 1);
    let done: Vec<_> = select(&doc, ".checklist li")
        .iter()
        .map(|li| li.value().attr("data-done").unwrap().to_owned())
        .collect();
    assert_eq!(done, ["true", "false", "false", "false"]);
    // The direction menu caps the toggles; one way in is saved from the form.
    let options: Vec<_> = select(&doc, "#direction option")
        .iter()
        .map(|o| o.value().attr("value").unwrap().to_owned())
        .collect();
    assert_eq!(options, ["both", "one_way_in", "one_way_out"]);
    b.post(
        "/ui/integrations/lawruler/toggles",
        &[
            ("csrf", &csrf),
            ("direction", "one_way_in"),
            ("enable_integration", "on"),
        ],
    )
    .await
    .expect(StatusCode::SEE_OTHER);
    let api = app
        .get("/api/v1/integrations/lawruler")
        .await
        .expect(StatusCode::OK);
    assert_eq!(api.body["settings"]["direction"], "one_way_in");
    let bad = b
        .post(
            "/ui/integrations/lawruler/toggles",
            &[("csrf", &csrf), ("direction", "sideways")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        texts(&Html::parse_document(&bad.html), "#toggles .form-error")[0]
            .contains("must be both, one_way_in or one_way_out")
    );
    // The frequency menu lists the three with their labels; hourly is saved from the form and
    // the next run shown, and "Run now" starts a run.
    let options: Vec<_> = select(&doc, "#frequency option")
        .iter()
        .map(|o| o.value().attr("value").unwrap().to_owned())
        .collect();
    assert_eq!(options, ["real_time", "hourly", "daily"]);
    assert_eq!(
        texts(&doc, "#frequency option")[0],
        "Real time: changes are sent at once"
    );
    assert!(texts(&doc, "#next-run")[0].contains("real time"));
    b.post(
        "/ui/integrations/lawruler/toggles",
        &[
            ("csrf", &csrf),
            ("direction", "one_way_in"),
            ("frequency", "hourly"),
            ("enable_integration", "on"),
        ],
    )
    .await
    .expect(StatusCode::SEE_OTHER);
    let api = app
        .get("/api/v1/integrations/lawruler")
        .await
        .expect(StatusCode::OK);
    assert_eq!(api.body["settings"]["frequency"], "hourly");
    let next = api.body["frequency"]["next_run_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let page = b.get("/ui/integrations/lawruler").await;
    let doc = Html::parse_document(&page.html);
    let shown = select(&doc, "#next-run time");
    assert_eq!(shown.len(), 1, "{}", page.html);
    // "What syncs" is read off the settings just saved: one way in sends nothing.
    assert_eq!(
        texts(&doc, "#selective tr[data-kind=statuses] td")[1],
        "Off (direction)"
    );
    assert_eq!(
        texts(&doc, "#selective tr[data-kind=cases] td")[1],
        "Not available"
    );
    assert!(
        next.starts_with(&shown[0].value().attr("datetime").unwrap()[..16]),
        "{next} vs {:?}",
        shown[0].value().attr("datetime")
    );
    let bad = b
        .post(
            "/ui/integrations/lawruler/toggles",
            &[("csrf", &csrf), ("frequency", "weekly")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        texts(&Html::parse_document(&bad.html), "#toggles .form-error")[0]
            .contains("must be real_time, hourly or daily")
    );
    // The conflict rule: its menu names the CRM's change times, and it is saved from the form.
    assert!(
        texts(&doc, "#conflict-help")[0].contains("arrival"),
        "Law Ruler's change times are named"
    );
    b.post(
        "/ui/integrations/lawruler/toggles",
        &[
            ("csrf", &csrf),
            ("conflict_resolution", "platform_wins"),
            ("enable_integration", "on"),
        ],
    )
    .await
    .expect(StatusCode::SEE_OTHER);
    let api = app
        .get("/api/v1/integrations/lawruler")
        .await
        .expect(StatusCode::OK);
    assert_eq!(api.body["settings"]["conflict_resolution"], "platform_wins");
    let bad = b
        .post(
            "/ui/integrations/lawruler/toggles",
            &[("csrf", &csrf), ("conflict_resolution", "newest")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    b.post("/ui/integrations/lawruler/run", &[("csrf", &csrf)])
        .await
        .expect(StatusCode::SEE_OTHER);
    let log = app
        .get("/api/v1/integrations/lawruler/sync-log")
        .await
        .expect(StatusCode::OK);
    assert!(
        log.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["operation"] == "run now"),
        "{}",
        log.text
    );
    // Status sync is off with nothing held: turning it on needs a status mapping first,
    // which the page says in place.
    let r = b
        .post(
            "/ui/integrations/lawruler/status-sync",
            &[("csrf", &csrf), ("enabled", "true")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.html
            .contains("map statuses before turning on status sync"),
        "{}",
        r.html
    );
    // In place: in the Status sync section, next to the button pressed, not in Connection.
    let doc = Html::parse_document(&r.html);
    let said = texts(&doc, "#status-sync [role=alert]");
    assert_eq!(said.len(), 1, "{}", r.html);
    assert!(
        said[0].contains("map statuses before turning on status sync"),
        "{said:?}"
    );
    assert!(
        select(&doc, "#connection [role=alert]").is_empty(),
        "{}",
        r.html
    );
}
casebridge_testkit::backend_test!(
    the_configuration_tab_lists_toggles_in_the_safe_order_and_masks_secrets
);

async fn a_refused_toggle_change_is_explained_next_to_the_toggles(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let b = app.admin_browser().await;
    let page = b
        .get("/ui/integrations/lawruler")
        .await
        .expect(StatusCode::OK);
    // Not connected yet: Enable Integration is refused, and the page says why at the toggles.
    let r = b
        .post(
            "/ui/integrations/lawruler/toggles",
            &[("csrf", &page.csrf()), ("enable_integration", "on")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.html);
    let doc = Html::parse_document(&r.html);
    let said = texts(&doc, "#toggles [role=alert]");
    assert_eq!(said.len(), 1, "{}", r.html);
    assert!(
        said[0].contains("connect Law Ruler before enabling the integration"),
        "{said:?}"
    );
    assert!(
        select(&doc, "#connection [role=alert]").is_empty(),
        "{}",
        r.html
    );
    let view = app
        .get("/api/v1/integrations/lawruler")
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        view.body["settings"]["enable_integration"], false,
        "{}",
        view.text
    );
}
casebridge_testkit::backend_test!(a_refused_toggle_change_is_explained_next_to_the_toggles);

async fn an_admin_sees_only_their_own_company(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    app.lawruler_connected_offline(app.company_id, &app.api_key)
        .await;
    let mine = app
        .get("/api/v1/integrations/lawruler")
        .await
        .expect(StatusCode::OK);
    let my_url = mine.body["webhook_url"].as_str().unwrap().to_owned();
    let (other, _) = app.new_company("Other Firm").await;
    app.admin_user(other, "eve@other.test", "correct horse battery")
        .await;
    let eve = Browser::new(&app.base);
    eve.sign_in("eve@other.test", "correct horse battery")
        .await
        .expect(StatusCode::SEE_OTHER);
    let page = eve
        .get("/ui/integrations/lawruler")
        .await
        .expect(StatusCode::OK);
    assert!(page.html.contains("Other Firm"));
    assert!(!page.html.contains("Test Firm"));
    assert!(
        !page.html.contains(&my_url),
        "another company's webhook URL shown"
    );
    let cards = eve.get("/ui/integrations").await.expect(StatusCode::OK);
    assert!(cards.html.contains("Not connected"));
}
casebridge_testkit::backend_test!(an_admin_sees_only_their_own_company);
