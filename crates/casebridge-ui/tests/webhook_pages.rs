//! The webhook screens of the admin UI on both backends: the list, create (SSRF refusal next to
//! the URL, the secret shown once), edit, rotate, send test, the deliveries list with filters in
//! the URL, the delivery inspector, replay, recovery with its count, the event catalog, company
//! isolation and CSRF.

use std::time::Duration;

use casebridge_domain::clock::Clock;
use casebridge_testkit::receiver::{Receiver, Reply as R};
use casebridge_testkit::{Browser, TestApp};
use reqwest::StatusCode;
use scraper::{Html, Selector};
use serde_json::{json, Value};

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

fn attr(doc: &Html, css: &str, name: &str) -> String {
    select(doc, css)
        .first()
        .unwrap_or_else(|| panic!("no {css}"))
        .value()
        .attr(name)
        .unwrap_or_else(|| panic!("{css} has no {name}"))
        .to_owned()
}

/// Creates a webhook through the JSON API; returns its id.
async fn api_hook(app: &TestApp, name: &str, url: &str, extra: Value) -> String {
    let mut body = json!({"name": name, "url": url});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let r = app.post("/api/v1/webhooks", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body["id"].as_str().unwrap().to_owned()
}

async fn api_test(app: &TestApp, hook: &str) -> String {
    let r = app
        .post(&format!("/api/v1/webhooks/{hook}/test"), json!({}))
        .await
        .expect(StatusCode::ACCEPTED);
    r.body["delivery_id"].as_str().unwrap().to_owned()
}

async fn status_of(app: &TestApp, delivery: &str) -> String {
    let d = app
        .get(&format!("/api/v1/deliveries/{delivery}"))
        .await
        .expect(StatusCode::OK);
    d.body["status"].as_str().unwrap().to_owned()
}

/// Row ids of the deliveries table on a page.
fn delivery_rows(html: &str) -> Vec<(String, String)> {
    let doc = Html::parse_document(html);
    select(&doc, "#deliveries tbody tr")
        .iter()
        .map(|tr| {
            (
                tr.value().attr("data-id").unwrap().to_owned(),
                tr.value().attr("data-status").unwrap().to_owned(),
            )
        })
        .collect()
}

async fn create_refuses_a_private_url_next_to_the_field_then_shows_the_secret_once(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let rx = Receiver::start().await;
    let b = app.admin_browser().await;
    let form = b.get("/ui/webhooks/new").await.expect(StatusCode::OK);
    let doc = Html::parse_document(&form.html);
    let boxes = select(&doc, "#event-types input[type=checkbox][name=event_types]");
    assert_eq!(boxes.len(), 12, "one box per subscribable event type");
    for input in select(&doc, "#webhook-form input:not([type=hidden])") {
        let id = input.value().attr("id").expect("every input has an id");
        assert_eq!(
            select(&doc, &format!("label[for='{id}']")).len(),
            1,
            "label for {id}"
        );
    }
    let csrf = form.csrf();

    // A private address: refused next to the URL field, nothing stored, the App Key not echoed.
    let bad = b
        .post(
            "/ui/webhooks",
            &[
                ("csrf", &csrf),
                ("name", "Zapier intake"),
                ("url", "https://10.1.2.3/hook"),
                ("app_key", "clear-app-key-4711"),
                ("active", "on"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.html);
    let doc = Html::parse_document(&bad.html);
    let err = texts(&doc, "#url-error");
    assert_eq!(err.len(), 1, "{}", bad.html);
    assert!(!err[0].is_empty());
    assert_eq!(select(&doc, "#f-url[aria-invalid=true]").len(), 1);
    assert_eq!(
        attr(&doc, "#f-name", "value"),
        "Zapier intake",
        "what was typed stays"
    );
    assert!(!bad.html.contains("clear-app-key-4711"));
    let stored = app.get("/api/v1/webhooks").await.expect(StatusCode::OK);
    assert_eq!(
        stored.body["data"].as_array().unwrap().len(),
        0,
        "{}",
        stored.text
    );

    // A good one: the secret is on the answer, once.
    let ok = b
        .post(
            "/ui/webhooks",
            &[
                ("csrf", &csrf),
                ("name", "Zapier intake"),
                ("url", &rx.url("/in")),
                ("app_key", "clear-app-key-4711"),
                ("active", "on"),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.html);
    let doc = Html::parse_document(&ok.html);
    let secret = attr(&doc, "#signing-secret", "value");
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(!ok.html.contains("clear-app-key-4711"));
    let stored = app.get("/api/v1/webhooks").await.expect(StatusCode::OK);
    let hooks = stored.body["data"].as_array().unwrap();
    assert_eq!(hooks.len(), 1);
    let id = hooks[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(hooks[0]["event_types"], json!([]));
    assert_eq!(
        select(&doc, &format!("a[href='/ui/webhooks/{id}']")).len(),
        1
    );

    // The list: host, "All, including future", company scope, active.
    let list = b.get("/ui/webhooks").await.expect(StatusCode::OK);
    let doc = Html::parse_document(&list.html);
    assert_eq!(select(&doc, "a[href='/ui/webhooks/new']").len(), 1);
    assert_eq!(texts(&doc, "#webhooks tbody th"), ["Zapier intake"]);
    assert_eq!(
        texts(&doc, "#webhooks td.host"),
        [rx.base.trim_start_matches("http://")]
    );
    assert_eq!(
        texts(&doc, "#webhooks td.events"),
        ["All, including future"]
    );
    assert_eq!(texts(&doc, "#webhooks td.scope"), ["Company"]);
    assert_eq!(texts(&doc, "#webhooks td.active"), ["Active"]);
    assert_eq!(texts(&doc, "#webhooks td.last"), ["none yet"]);
    assert!(select(&doc, "#webhooks th[scope=col]").len() >= 5);

    // The detail page: never the secret again; the App Key masked.
    let detail = b
        .get(&format!("/ui/webhooks/{id}"))
        .await
        .expect(StatusCode::OK);
    assert!(
        !detail.html.contains(&secret),
        "the secret is shown only once"
    );
    assert!(
        !detail.html.contains("clear-app-key-4711"),
        "App Key in clear"
    );
    let doc = Html::parse_document(&detail.html);
    assert_eq!(
        texts(&doc, "#app-key-masked"),
        [hooks[0]["app_key"].as_str().unwrap()]
    );
    assert_eq!(attr(&doc, "#f-app_key", "value"), "");
    assert_eq!(
        select(&doc, "form[action$='/delete'][data-confirm]").len(),
        1
    );
    let token = Selector::parse("input[type=hidden][name=csrf]").unwrap();
    let csrf = detail.csrf();
    let forms = select(&doc, "form[method=post]");
    assert!(forms.len() >= 5, "edit, rotate, test, delete, sign out");
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

    // Edit: choose an event type; an empty App Key field keeps the stored key.
    let r = b
        .post(
            &format!("/ui/webhooks/{id}"),
            &[
                ("csrf", &csrf),
                ("name", "Zapier calls"),
                ("url", &rx.url("/in")),
                ("event_types", "call_started"),
                ("event_types", "call_ended"),
                ("app_key", ""),
                ("active", "on"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.html);
    let after = app
        .get(&format!("/api/v1/webhooks/{id}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        after.body["event_types"],
        json!(["call_started", "call_ended"])
    );
    assert_eq!(after.body["name"], "Zapier calls");
    assert_eq!(after.body["app_key"], hooks[0]["app_key"], "App Key kept");
    let page = b
        .get(&format!("/ui/webhooks/{id}"))
        .await
        .expect(StatusCode::OK);
    assert!(page.html.contains("Webhook saved."));
    let doc = Html::parse_document(&page.html);
    assert_eq!(select(&doc, "#ev-call_started[checked]").len(), 1);
    assert_eq!(select(&doc, "#ev-task_completed[checked]").len(), 0);
    // A private URL on edit is refused next to the field too, and changes nothing.
    let r = b
        .post(
            &format!("/ui/webhooks/{id}"),
            &[
                ("csrf", &csrf),
                ("name", "Zapier calls"),
                ("url", "https://192.168.0.10/x"),
                ("active", "on"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(texts(&Html::parse_document(&r.html), "#url-error").len(), 1);
    let unchanged = app
        .get(&format!("/api/v1/webhooks/{id}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(unchanged.body["url"], rx.url("/in"));

    // Rotate: a new secret, once, with the overlap in the company's time zone.
    app.patch("/api/v1/company", json!({"timezone": "America/New_York"}))
        .await
        .expect(StatusCode::OK);
    let now = Clock::now(&app.clock);
    let r = b
        .post(
            &format!("/ui/webhooks/{id}/rotate-secret"),
            &[("csrf", &csrf), ("overlap_secs", "86400")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.html);
    let doc = Html::parse_document(&r.html);
    let rotated = attr(&doc, "#signing-secret", "value");
    assert!(rotated.starts_with("whsec_") && rotated != secret);
    assert!(texts(&doc, "#overlap")[0].starts_with("Previous secrets keep signing until"));
    let until = jiff::Timestamp::from_second(now.as_second() + 86_400).unwrap();
    assert_eq!(
        attr(&doc, "#overlap time", "datetime"),
        until.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    );
    let local = until
        .to_zoned(jiff::tz::TimeZone::get("America/New_York").unwrap())
        .strftime("%Y-%m-%d %H:%M %Z")
        .to_string();
    assert_eq!(texts(&doc, "#overlap time"), [local]);
    let again = b
        .get(&format!("/ui/webhooks/{id}"))
        .await
        .expect(StatusCode::OK);
    assert!(!again.html.contains(&rotated));
}
casebridge_testkit::backend_test!(
    create_refuses_a_private_url_next_to_the_field_then_shows_the_secret_once
);

async fn send_test_reaches_the_receiver_and_the_inspector_shows_the_attempt(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let rx = Receiver::start().await;
    let id = api_hook(
        &app,
        "Consumer",
        &rx.url("/t"),
        json!({"app_key": "clear-app-key-4711"}),
    )
    .await;
    let b = app.admin_browser().await;
    let detail = b
        .get(&format!("/ui/webhooks/{id}"))
        .await
        .expect(StatusCode::OK);
    let r = b
        .post(
            &format!("/ui/webhooks/{id}/test"),
            &[("csrf", &detail.csrf())],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.html);
    let to = r.location().unwrap().to_owned();
    assert!(to.starts_with("/ui/deliveries/"), "{to}");
    let queued = b.get(&to).await.expect(StatusCode::OK);
    assert!(queued.html.contains("was queued"), "the notice");
    assert_eq!(
        texts(&Html::parse_document(&queued.html), "#delivery-status"),
        ["pending"]
    );

    app.webhook_worker(2).drain().await.unwrap();
    let got = rx.received("/t");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["type"], "webhook.test");
    assert_eq!(
        got[0].header("x-public-api-key"),
        Some("clear-app-key-4711")
    );

    let page = b.get(&to).await.expect(StatusCode::OK);
    assert!(
        !page.html.contains("clear-app-key-4711"),
        "App Key masked in the inspector"
    );
    let doc = Html::parse_document(&page.html);
    assert_eq!(texts(&doc, "#delivery-status"), ["succeeded"]);
    let attempts = select(&doc, "li.attempt");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].value().attr("data-succeeded"), Some("true"));
    let heading = texts(&doc, "li.attempt h3");
    assert!(heading[0].starts_with("Attempt 1 · test"), "{heading:?}");
    assert!(texts(&doc, ".attempt-result")[0].contains("HTTP 200"));
    assert_eq!(
        texts(&doc, ".request-url"),
        [format!("POST {}", rx.url("/t"))]
    );
    let headers = texts(&doc, ".request-headers tbody th");
    assert!(
        headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case("webhook-signature")),
        "{headers:?}"
    );
    assert!(
        headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case("x-public-api-key")),
        "{headers:?}"
    );
    let payload: Value = serde_json::from_str(&texts(&doc, "#payload")[0]).expect("pretty JSON");
    assert_eq!(payload["type"], "webhook.test");
    assert!(
        texts(&doc, "#payload")[0].contains("\n  "),
        "pretty-printed"
    );
    assert_eq!(texts(&doc, "#next-retry"), ["none"]);
}
casebridge_testkit::backend_test!(
    send_test_reaches_the_receiver_and_the_inspector_shows_the_attempt
);

async fn filters_in_the_url_narrow_deliveries_and_replay_and_recover_requeue(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let rx = Receiver::start().await;
    rx.always("/down", R::status(500).body("boom"));
    let down = api_hook(&app, "Failing", &rx.url("/down"), json!({})).await;
    let up = api_hook(&app, "Working", &rx.url("/up"), json!({})).await;
    let since = Clock::now(&app.clock).to_string();
    let failing: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(api_test(&app, &down).await);
        }
        v
    };
    let fine = api_test(&app, &up).await;
    let w = app.webhook_worker(4);
    w.drain().await.unwrap();
    let b = app.admin_browser().await;

    // A failing delivery is pending with its retry scheduled, and says when.
    let page = b
        .get(&format!("/ui/deliveries/{}", failing[0]))
        .await
        .expect(StatusCode::OK);
    let doc = Html::parse_document(&page.html);
    assert_eq!(texts(&doc, "#delivery-status"), ["pending"]);
    assert_eq!(select(&doc, "#next-retry time").len(), 1, "{}", page.html);
    assert!(texts(&doc, ".response-body")[0].contains("boom"));
    assert!(texts(&doc, ".attempt-result")[0].contains("HTTP 500"));

    for _ in 0..12 {
        app.advance(Duration::from_secs(6 * 3600));
        w.drain().await.unwrap();
    }
    for d in &failing {
        assert_eq!(status_of(&app, d).await, "failed");
    }
    // A day later the first session has idled out: sign in again.
    let b = app.admin_browser().await;
    // The list shows each webhook's latest delivery.
    let list = b.get("/ui/webhooks").await.expect(StatusCode::OK);
    let doc = Html::parse_document(&list.html);
    let last = |id: &str| texts(&doc, &format!("#webhooks tr[data-id='{id}'] td.last"));
    assert_eq!(last(&down), ["failed HTTP 500"]);
    assert_eq!(last(&up), ["succeeded HTTP 200"]);

    let all = b.get("/ui/deliveries").await.expect(StatusCode::OK);
    assert_eq!(delivery_rows(&all.html).len(), 4);
    let failed = b
        .get("/ui/deliveries?status=failed")
        .await
        .expect(StatusCode::OK);
    let rows = delivery_rows(&failed.html);
    assert_eq!(rows.len(), 3, "{}", failed.html);
    assert!(rows.iter().all(|(_, s)| s == "failed"));
    let doc = Html::parse_document(&failed.html);
    assert_eq!(
        select(&doc, "#q-status option[value=failed][selected]").len(),
        1,
        "the filter stays"
    );
    let ok = delivery_rows(
        &b.get("/ui/deliveries?status=succeeded")
            .await
            .expect(StatusCode::OK)
            .html,
    );
    assert_eq!(ok, [(fine.clone(), "succeeded".to_owned())]);
    let per_hook = delivery_rows(
        &b.get(&format!("/ui/deliveries?webhook={up}"))
            .await
            .expect(StatusCode::OK)
            .html,
    );
    assert_eq!(per_hook.len(), 1);
    let event_id = app
        .get(&format!("/api/v1/deliveries/{}", failing[1]))
        .await
        .body["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_event = delivery_rows(
        &b.get(&format!("/ui/deliveries?event_id={event_id}"))
            .await
            .expect(StatusCode::OK)
            .html,
    );
    assert_eq!(by_event, [(failing[1].clone(), "failed".to_owned())]);
    let retried = delivery_rows(
        &b.get("/ui/deliveries?trigger=retry&event_type=webhook.test")
            .await
            .expect(StatusCode::OK)
            .html,
    );
    assert_eq!(retried.len(), 3, "only failing deliveries were retried");
    let none = b
        .get("/ui/deliveries?trigger=manual")
        .await
        .expect(StatusCode::OK);
    assert!(delivery_rows(&none.html).is_empty());
    assert!(none.html.contains("No deliveries match these filters"));
    let later = delivery_rows(
        &b.get("/ui/deliveries?until=2000-01-01T00:00")
            .await
            .expect(StatusCode::OK)
            .html,
    );
    assert!(later.is_empty());
    let bad = b.get("/ui/deliveries?event_id=nope").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        texts(&Html::parse_document(&bad.html), "#event_id-error").len(),
        1
    );

    // Replay one: requeued; replaying it again while pending is refused, in words.
    rx.always("/down", R::status(204));
    let csrf = failed.csrf();
    let r = b
        .post(
            &format!("/ui/deliveries/{}/replay", failing[0]),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.html);
    assert_eq!(status_of(&app, &failing[0]).await, "pending");
    let r = b
        .post(
            &format!("/ui/deliveries/{}/replay", failing[0]),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.html.contains("still pending"), "{}", r.html);

    // Recover: the confirmation counts exactly the failed ones matching; the POST requeues them.
    let q = serde_urlencoded::to_string([
        ("status", "failed"),
        ("webhook", down.as_str()),
        ("since", since.as_str()),
    ])
    .unwrap();
    let confirm = b
        .get(&format!("/ui/deliveries/recover?{q}"))
        .await
        .expect(StatusCode::OK);
    let doc = Html::parse_document(&confirm.html);
    assert_eq!(
        attr(&doc, "#recover-count", "data-count"),
        "2",
        "{}",
        confirm.html
    );
    assert!(texts(&doc, "#recover-count")[0].starts_with("2 failed deliveries"));
    let link = b
        .get(&format!("/ui/deliveries?{q}"))
        .await
        .expect(StatusCode::OK);
    let doc = Html::parse_document(&link.html);
    assert_eq!(
        attr(&doc, "#recover-link", "href"),
        format!("/ui/deliveries/recover?{}", {
            let mut m = std::collections::BTreeMap::new();
            m.insert("since", since.as_str());
            m.insert("status", "failed");
            m.insert("webhook", down.as_str());
            serde_urlencoded::to_string(&m).unwrap()
        })
    );
    // Without a start time the page asks for one (not an error), and offers no requeue;
    // the POST without one is refused.
    let no_since = b
        .get("/ui/deliveries/recover?status=failed")
        .await
        .expect(StatusCode::OK);
    let doc = Html::parse_document(&no_since.html);
    assert_eq!(texts(&doc, "#since-error").len(), 1);
    assert!(select(&doc, "form[method=post][action='/ui/deliveries/recover']").is_empty());
    let r = b
        .post(
            "/ui/deliveries/recover",
            &[("csrf", &csrf), ("status", "failed")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = b
        .post(
            "/ui/deliveries/recover",
            &[
                ("csrf", &csrf),
                ("status", "failed"),
                ("webhook", &down),
                ("since", &since),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.html);
    let back = b.get(r.location().unwrap()).await.expect(StatusCode::OK);
    assert!(back.html.contains("2 requeued"), "{}", back.html);
    for d in &failing {
        assert_eq!(status_of(&app, d).await, "pending");
    }
    w.drain().await.unwrap();
    for d in &failing {
        assert_eq!(status_of(&app, d).await, "succeeded");
    }
    let confirm = b
        .get(&format!("/ui/deliveries/recover?{q}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        attr(
            &Html::parse_document(&confirm.html),
            "#recover-count",
            "data-count"
        ),
        "0"
    );
    let manual = delivery_rows(
        &b.get("/ui/deliveries?trigger=manual")
            .await
            .expect(StatusCode::OK)
            .html,
    );
    assert_eq!(manual.len(), 3);
}
casebridge_testkit::backend_test!(
    filters_in_the_url_narrow_deliveries_and_replay_and_recover_requeue
);

async fn another_company_gets_404_and_a_form_without_csrf_changes_nothing(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let rx = Receiver::start().await;
    let id = api_hook(&app, "Secret Hook Name", &rx.url("/t"), json!({})).await;
    let delivery = api_test(&app, &id).await;
    app.webhook_worker(2).drain().await.unwrap();

    let (other, _) = app.new_company("Other Firm").await;
    app.admin_user(other, "eve@other.test", "correct horse battery")
        .await;
    let eve = Browser::new(&app.base);
    eve.sign_in("eve@other.test", "correct horse battery")
        .await
        .expect(StatusCode::SEE_OTHER);
    let theirs = eve.get("/ui/webhooks").await.expect(StatusCode::OK);
    assert!(!theirs.html.contains("Secret Hook Name"));
    for path in [
        format!("/ui/webhooks/{id}"),
        format!("/ui/deliveries/{delivery}"),
        format!("/ui/deliveries?webhook={id}"),
        format!("/ui/deliveries/recover?webhook={id}&since=2020-01-01T00:00"),
    ] {
        assert_eq!(eve.get(&path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    let all = eve.get("/ui/deliveries").await.expect(StatusCode::OK);
    assert!(delivery_rows(&all.html).is_empty());
    let csrf = theirs.csrf();
    for path in [
        format!("/ui/webhooks/{id}/delete"),
        format!("/ui/webhooks/{id}/test"),
        format!("/ui/webhooks/{id}/rotate-secret"),
        format!("/ui/deliveries/{delivery}/replay"),
    ] {
        assert_eq!(
            eve.post(&path, &[("csrf", &csrf)]).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    assert_eq!(
        eve.get("/ui/webhooks/not-an-id").await.status,
        StatusCode::NOT_FOUND
    );

    // Without the session's token: 403 and nothing changes.
    let b = app.admin_browser().await;
    let page = b
        .get(&format!("/ui/webhooks/{id}"))
        .await
        .expect(StatusCode::OK);
    for bad in [None, Some("wrong")] {
        let mut fields = vec![("name", "Renamed"), ("url", "https://example.com/x")];
        if let Some(t) = bad {
            fields.push(("csrf", t));
        }
        assert_eq!(
            b.post(&format!("/ui/webhooks/{id}/delete"), &fields)
                .await
                .status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            b.post(&format!("/ui/webhooks/{id}"), &fields).await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            b.post("/ui/webhooks", &fields).await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            b.post(&format!("/ui/deliveries/{delivery}/replay"), &fields)
                .await
                .status,
            StatusCode::FORBIDDEN
        );
    }
    let hooks = app.get("/api/v1/webhooks").await.expect(StatusCode::OK);
    let hooks = hooks.body["data"].as_array().unwrap();
    assert_eq!(
        (hooks.len(), hooks[0]["name"].as_str()),
        (1, Some("Secret Hook Name"))
    );
    assert_eq!(status_of(&app, &delivery).await, "succeeded");

    // With it, delete works and says so.
    let r = b
        .post(
            &format!("/ui/webhooks/{id}/delete"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, Some("/ui/webhooks"))
    );
    let list = b.get("/ui/webhooks").await.expect(StatusCode::OK);
    assert!(list.html.contains("Webhook deleted"));
    let hooks = app.get("/api/v1/webhooks").await.expect(StatusCode::OK);
    assert_eq!(hooks.body["data"].as_array().unwrap().len(), 0);
}
casebridge_testkit::backend_test!(another_company_gets_404_and_a_form_without_csrf_changes_nothing);

async fn revealing_the_secret_is_post_only_recorded_and_shows_the_signing_one(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let hook = api_hook(
        &app,
        "Firm server",
        "http://127.0.0.1:9/x",
        json!({"secret": secret}),
    )
    .await;
    let b = app.admin_browser().await;
    let page = b
        .get(&format!("/ui/webhooks/{hook}"))
        .await
        .expect(StatusCode::OK);
    assert!(!page.html.contains(secret), "not shown on the detail page");
    let doc = Html::parse_document(&page.html);
    assert_eq!(
        texts(&doc, "#last-reveal"),
        ["Never revealed since it was created."]
    );
    // Not by GET (nothing to follow from a link or a history entry).
    assert_eq!(
        b.get(&format!("/ui/webhooks/{hook}/reveal-secret"))
            .await
            .status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    // Not without the CSRF token.
    let r = b
        .post(&format!("/ui/webhooks/{hook}/reveal-secret"), &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!r.html.contains(secret));
    let r = b
        .post(
            &format!("/ui/webhooks/{hook}/reveal-secret"),
            &[("csrf", &page.csrf())],
        )
        .await
        .expect(StatusCode::OK);
    let doc = Html::parse_document(&r.html);
    assert_eq!(attr(&doc, "#signing-secret", "value"), secret);
    assert!(r.html.contains("This reveal was recorded"));
    let page = b
        .get(&format!("/ui/webhooks/{hook}"))
        .await
        .expect(StatusCode::OK);
    let doc = Html::parse_document(&page.html);
    let line = &texts(&doc, "#last-reveal")[0];
    assert!(
        line.starts_with("Last revealed by admin-") && line.contains("@firm.test"),
        "{line}"
    );
    // After a rotation, the reveal shows the new secret (the one that signs now).
    let rotated = app
        .post(&format!("/api/v1/webhooks/{hook}/rotate-secret"), json!({}))
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    let new = rotated.body["secret"].as_str().unwrap().to_owned();
    let r = b
        .post(
            &format!("/ui/webhooks/{hook}/reveal-secret"),
            &[("csrf", &page.csrf())],
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        attr(&Html::parse_document(&r.html), "#signing-secret", "value"),
        new
    );
    // Another company's admin cannot reveal it.
    let (other, _) = app.new_company("Other Firm").await;
    app.admin_user(other, "eve@other.test", "correct horse battery")
        .await;
    let eve = Browser::new(&app.base);
    eve.sign_in("eve@other.test", "correct horse battery")
        .await
        .expect(StatusCode::SEE_OTHER);
    let mine = eve.get("/ui/webhooks").await.expect(StatusCode::OK);
    let r = eve
        .post(
            &format!("/ui/webhooks/{hook}/reveal-secret"),
            &[("csrf", &mine.csrf())],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(!r.html.contains(&new));
}
casebridge_testkit::backend_test!(
    revealing_the_secret_is_post_only_recorded_and_shows_the_signing_one
);

async fn the_event_catalog_shows_each_type_with_schema_and_example(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let b = app.admin_browser().await;
    let page = b.get("/ui/event-types").await.expect(StatusCode::OK);
    let api = app.get("/api/v1/event-types").await.expect(StatusCode::OK);
    let api = api.body.as_array().unwrap();
    let doc = Html::parse_document(&page.html);
    let sections = select(&doc, "section.event-type");
    assert_eq!(sections.len(), api.len());
    assert_eq!(sections.len(), 12);
    let sel = |css| Selector::parse(css).unwrap();
    for (s, want) in sections.iter().zip(api) {
        let name = s.value().attr("id").unwrap();
        assert_eq!(name, want["type"].as_str().unwrap());
        let description: String = s
            .select(&sel("p.description"))
            .next()
            .unwrap()
            .text()
            .collect();
        assert!(
            description.starts_with(want["description"].as_str().unwrap()),
            "{description}"
        );
        let schema: String = s
            .select(&sel("pre.schema"))
            .next()
            .unwrap()
            .text()
            .collect();
        let example: String = s
            .select(&sel("pre.example"))
            .next()
            .unwrap()
            .text()
            .collect();
        let schema: Value = serde_json::from_str(&schema).expect("schema is JSON");
        let example: Value = serde_json::from_str(&example).expect("example is JSON");
        assert_eq!(schema, want["schema"]);
        assert_eq!(example, want["example"]);
    }
    let doc_nav = texts(&doc, "nav[aria-label=Sections] a[aria-current=page]");
    assert_eq!(doc_nav, ["Event types"]);
}
casebridge_testkit::backend_test!(the_event_catalog_shows_each_type_with_schema_and_example);
