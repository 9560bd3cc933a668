//! The Lists screen (List IDs, members, Law Ruler Auto-Add rules) and the Imports tab (CSV upload
//! and API import, live progress, rejected rows, idempotent re-run), on both backends.

use casebridge_crm::lawruler::import;
use casebridge_testkit::{Browser, TestApp};
use reqwest::StatusCode;
use scraper::{Html, Selector};
use serde_json::json;

fn texts(html: &str, css: &str) -> Vec<String> {
    let doc = Html::parse_document(html);
    doc.select(&Selector::parse(css).unwrap())
        .map(|e| {
            e.text()
                .collect::<String>()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// The no-JavaScript refresh: a `<meta http-equiv="refresh">` inside `<noscript>` (with
/// JavaScript, htmx refreshes the progress fragment instead of the whole page).
const REFRESH: &str = r#"<noscript><meta http-equiv="refresh" content="5"></noscript>"#;

fn attrs(html: &str, css: &str, attr: &str) -> Vec<String> {
    let doc = Html::parse_document(html);
    doc.select(&Selector::parse(css).unwrap())
        .filter_map(|e| e.value().attr(attr).map(str::to_owned))
        .collect()
}

const HEADER: &str = "Lead ID,Case Type ID,Case Type,Status ID,Status,Full Name,Created Date,Primary Contact ID,First Name,Last Name,Email,Cell Phone";

fn row(n: usize) -> String {
    format!("L{n},12,Auto Accident,7,Intake,\"Doe, Jane {n}\",2026-11-01,PC-{n},Jane{n},Doe,jane{n}@example.com,+1 555 010 {n:04}")
}

/// `n` good rows, and row 3 with an email the import refuses.
fn export(n: usize) -> String {
    let mut out = format!("{HEADER}\n");
    for k in 1..=n {
        if k == 3 {
            out.push_str(
                "L3,12,Auto Accident,7,Intake,Jane Doe,2026-11-01,PC-3,Jane,Doe,not-an-email,\n",
            );
        } else {
            out.push_str(&row(k));
            out.push('\n');
        }
    }
    out
}

/// Uploads `text` as the import form does (multipart, the token in the action URL), with the
/// browser's session cookie. Returns the status, the Location and the body.
async fn upload(
    app: &TestApp,
    b: &Browser,
    query: &str,
    text: &str,
) -> (StatusCode, Option<String>, String) {
    let cookie = format!("cb_session={}", b.cookie("cb_session").unwrap());
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::text(text.to_owned())
            .file_name("leads.csv")
            .mime_str("text/csv")
            .unwrap(),
    );
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(app.url(&format!("/ui/integrations/lawruler/imports/file{query}")))
        .header("cookie", cookie)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let location = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, location, r.text().await.unwrap())
}

async fn imports_stored(app: &TestApp) -> usize {
    let r = app
        .get("/api/v1/integrations/lawruler/import")
        .await
        .expect(StatusCode::OK);
    r.body["data"].as_array().unwrap().len()
}

async fn rules_of(app: &TestApp, list: &str) -> Vec<serde_json::Value> {
    app.get(&format!("/api/v1/lists/{list}/auto-add-rules"))
        .await
        .expect(StatusCode::OK)
        .body
        .as_array()
        .unwrap()
        .clone()
}

async fn lists_show_their_id_to_copy_members_and_auto_add_rules(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let b = app.admin_browser().await;
    let page = b.get("/ui/lists").await.expect(StatusCode::OK);
    assert!(
        texts(&page.html, "nav a[aria-current=page]").contains(&"Lists".to_owned()),
        "nav entry"
    );
    assert!(page.html.contains("No lists yet"), "{}", page.html);
    let csrf = page.csrf();

    // Create a list from the page; it appears with its id in the copy field.
    let r = b
        .post("/ui/lists", &[("csrf", &csrf), ("name", "Hot leads")])
        .await
        .expect(StatusCode::SEE_OTHER);
    assert!(r.location().unwrap().starts_with("/ui/lists#list-"));
    let lists = app.get("/api/v1/lists").await.expect(StatusCode::OK).body;
    let id = lists["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(lists["data"][0]["name"], "Hot leads");
    let page = b.get("/ui/lists").await.expect(StatusCode::OK);
    assert!(page.html.contains("List Hot leads created."));
    assert_eq!(
        attrs(&page.html, &format!("#list-{id} input.list-id"), "value"),
        [id.as_str()]
    );
    assert_eq!(
        attrs(
            &page.html,
            &format!("#list-{id} button[data-copy]"),
            "data-copy"
        ),
        [format!("list-id-{id}")]
    );
    assert_eq!(
        texts(&page.html, &format!("label[for=list-id-{id}]")),
        ["List ID"]
    );
    assert_eq!(
        texts(&page.html, &format!("#list-{id} .members")),
        ["No cases on this list yet."]
    );

    // A duplicate name is refused next to the name field; nothing is created.
    let r = b
        .post("/ui/lists", &[("csrf", &csrf), ("name", "Hot leads")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let err = texts(&r.html, "#new-list-form #name-error");
    assert!(
        err.len() == 1 && err[0].contains("already exists"),
        "{}",
        r.html
    );
    assert_eq!(
        attrs(&r.html, "#list-name", "value"),
        ["Hot leads"],
        "what was typed is kept"
    );
    let r = b
        .post("/ui/lists", &[("csrf", &csrf), ("name", "  ")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        texts(&r.html, "#new-list-form #name-error").len(),
        1,
        "{}",
        r.html
    );
    assert_eq!(
        app.get("/api/v1/lists").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Cases on the list are shown.
    let client = app
        .create(
            "/api/v1/clients",
            json!({"first_name": "Ann", "last_name": "Lee"}),
        )
        .await;
    let ct = app
        .create("/api/v1/case-types", json!({"name": "MVA"}))
        .await;
    let case = app
        .create(
            "/api/v1/cases",
            json!({"name": "Lee v. Road", "case_type_id": ct, "client_id": client}),
        )
        .await;
    app.post(
        &format!("/api/v1/lists/{id}/cases"),
        json!({"case_id": case}),
    )
    .await
    .expect(StatusCode::CREATED);
    let page = b.get("/ui/lists").await.expect(StatusCode::OK);
    let members = texts(&page.html, &format!("#list-{id} .members li"));
    assert!(
        members.len() == 1 && members[0].contains("Lee v. Road"),
        "{members:?}"
    );

    // Add an auto-add rule; it is shown, and the API has it.
    let rules_path = format!("/ui/lists/{id}/rules");
    b.post(
        &rules_path,
        &[
            ("csrf", &csrf),
            ("case_type", "Auto Accident"),
            ("status", ""),
        ],
    )
    .await
    .expect(StatusCode::SEE_OTHER);
    let page = b.get("/ui/lists").await.expect(StatusCode::OK);
    let rows = texts(&page.html, &format!("#list-{id} table.rules tbody tr"));
    assert!(
        rows.len() == 1 && rows[0].starts_with("Law Ruler Auto Accident any"),
        "{rows:?}"
    );
    let rules = rules_of(&app, &id).await;
    assert_eq!(rules.len(), 1);
    assert_eq!(
        (
            rules[0]["provider"].as_str(),
            rules[0]["case_type"].as_str(),
            rules[0]["status"].as_str()
        ),
        (Some("lawruler"), Some("Auto Accident"), None)
    );
    let rule_id = rules[0]["id"].as_str().unwrap().to_owned();
    // A rule with neither is refused in place, on that list's form.
    let r = b
        .post(
            &rules_path,
            &[("csrf", &csrf), ("case_type", " "), ("status", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let err = texts(&r.html, &format!("#list-{id} .rule-form #case_type-error"));
    assert!(
        err.len() == 1 && err[0].contains("a rule needs a case type, a status, or both"),
        "{}",
        r.html
    );
    assert_eq!(rules_of(&app, &id).await.len(), 1);

    // Another company's admin cannot see or change this company's list rules.
    let (other, _) = app.new_company("Other Firm").await;
    app.admin_user(other, "other@firm.test", "correct horse battery")
        .await;
    let ob = Browser::new(&app.base);
    ob.sign_in("other@firm.test", "correct horse battery")
        .await
        .expect(StatusCode::SEE_OTHER);
    let theirs = ob.get("/ui/lists").await.expect(StatusCode::OK);
    assert!(!theirs.html.contains(&id) && theirs.html.contains("No lists yet"));
    let ocsrf = theirs.csrf();
    let r = ob
        .post(&rules_path, &[("csrf", &ocsrf), ("status", "Signed")])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.html);
    let r = ob
        .post(
            &format!("{rules_path}/{rule_id}/delete"),
            &[("csrf", &ocsrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.html);
    assert_eq!(rules_of(&app, &id).await.len(), 1, "unchanged");

    // Delete it.
    b.post(
        &format!("{rules_path}/{rule_id}/delete"),
        &[("csrf", &csrf)],
    )
    .await
    .expect(StatusCode::SEE_OTHER);
    assert!(rules_of(&app, &id).await.is_empty());
    let page = b.get("/ui/lists").await.expect(StatusCode::OK);
    assert!(texts(&page.html, &format!("#list-{id} table.rules tbody tr")).is_empty());
    assert!(page.html.contains("Auto-add rule deleted."));
    let r = b
        .post(
            &format!("{rules_path}/{rule_id}/delete"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "already gone");
}
casebridge_testkit::backend_test!(lists_show_their_id_to_copy_members_and_auto_add_rules);

async fn a_csv_import_shows_its_progress_then_its_counts_and_runs_again_idempotently(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let b = app.admin_browser().await;
    let page = b
        .get("/ui/integrations/lawruler/imports")
        .await
        .expect(StatusCode::OK);
    assert!(
        texts(&page.html, "nav.tabs a[aria-current=page]") == ["Imports"],
        "{}",
        page.html
    );
    let csrf = page.csrf();
    let action = attrs(&page.html, "form#file-form", "action");
    assert_eq!(
        action,
        [format!(
            "/ui/integrations/lawruler/imports/file?csrf={csrf}"
        )]
    );
    assert_eq!(
        attrs(&page.html, "form#file-form", "enctype"),
        ["multipart/form-data"]
    );
    assert_eq!(
        attrs(&page.html, "form#file-form input[type=file]", "name"),
        ["file"]
    );
    let n = import::BATCH_ROWS + 50;
    let text = export(n);

    // Without the token in the URL, or with a wrong one: 403, nothing stored.
    for q in ["", "?csrf=wrong"] {
        let (status, _, _) = upload(&app, &b, q, &text).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{q}");
    }
    assert_eq!(imports_stored(&app).await, 0);

    // A file missing required columns: the reason next to the file input, nothing stored.
    let q = format!("?csrf={csrf}");
    let (status, _, html) = upload(&app, &b, &q, "Lead ID,Full Name\nL1,Jane Doe\n").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    let err = texts(&html, "#file-form #file-error");
    assert!(err.len() == 1 && err[0].contains("Case Type ID"), "{html}");
    let (status, _, html) = upload(&app, &b, &q, "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert_eq!(texts(&html, "#file-form #file-error").len(), 1, "{html}");
    assert_eq!(imports_stored(&app).await, 0);

    // A good file: to its page, which shows the progress and refreshes itself.
    let (status, location, _) = upload(&app, &b, &q, &text).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = location.unwrap();
    let id = location.rsplit('/').next().unwrap().to_owned();
    assert_eq!(location, format!("/ui/integrations/lawruler/imports/{id}"));
    let queued = b.get(&location).await.expect(StatusCode::OK);
    assert_eq!(texts(&queued.html, "#import-status"), ["Queued"]);
    assert_eq!(
        attrs(&queued.html, "progress#import-progress", "max"),
        [n.to_string()]
    );
    assert_eq!(
        attrs(&queued.html, "progress#import-progress", "value"),
        ["0"]
    );
    assert!(queued.html.contains(REFRESH), "{}", queued.html);
    assert_eq!(
        attrs(&queued.html, "#progress", "hx-get"),
        [location.as_str()]
    );
    assert_eq!(attrs(&queued.html, "#progress", "hx-trigger"), ["every 2s"]);
    assert_eq!(attrs(&queued.html, "#progress", "hx-select"), ["#progress"]);

    // Half-way (one batch applied, as a worker stopped after its first commit leaves it).
    let uuid: uuid::Uuid = id.parse().unwrap();
    import::run(
        &app.db.store,
        &app.clock,
        app.company_id,
        uuid,
        import::BATCH_ROWS,
        Some(1),
    )
    .await
    .unwrap();
    let mid = b.get(&location).await.expect(StatusCode::OK);
    assert_eq!(texts(&mid.html, "#import-status"), ["Running"]);
    assert_eq!(
        attrs(&mid.html, "progress#import-progress", "value"),
        [import::BATCH_ROWS.to_string()]
    );
    assert!(texts(&mid.html, "#progress-text")[0]
        .starts_with(&format!("{} of {n} row(s)", import::BATCH_ROWS)));
    assert!(mid.html.contains(REFRESH), "{}", mid.html);
    let list = b
        .get("/ui/integrations/lawruler/imports")
        .await
        .expect(StatusCode::OK);
    let rows = texts(&list.html, "#imports tbody tr");
    assert!(
        rows.len() == 1 && rows[0].contains("File leads.csv Running"),
        "{rows:?}"
    );

    // After the CRM worker drains: done, the right counts, the rejected row, no refresh.
    app.crm_worker(0).drain().await.unwrap();
    let done = b.get(&location).await.expect(StatusCode::OK);
    assert_eq!(texts(&done.html, "#import-status"), ["Done"]);
    assert!(
        !done.html.contains("http-equiv=\"refresh\""),
        "no refresh once finished"
    );
    assert!(attrs(&done.html, "#progress", "hx-trigger").is_empty());
    assert_eq!(
        attrs(&done.html, "progress#import-progress", "value"),
        [n.to_string()]
    );
    let count = |html: &str, what: &str| texts(html, &format!("#count-{what}"))[0].clone();
    assert_eq!(count(&done.html, "total"), n.to_string());
    assert_eq!(count(&done.html, "processed"), n.to_string());
    assert_eq!(count(&done.html, "created"), (n - 1).to_string());
    assert_eq!(count(&done.html, "updated"), "0");
    assert_eq!(count(&done.html, "failed"), "1");
    assert_eq!(
        texts(&done.html, "#rejected tbody th"),
        ["3"],
        "the data row number"
    );
    let reasons = texts(&done.html, "#rejected tbody td");
    assert!(
        reasons.len() == 1 && reasons[0].contains("not an email address"),
        "{reasons:?}"
    );
    for k in [1, n] {
        let case = app
            .get(&format!(
                "/api/v1/cases/by-external-ref?provider=lawruler&external_id=L{k}"
            ))
            .await;
        assert_eq!(case.status, StatusCode::OK, "L{k}: {}", case.text);
        assert_eq!(case.body["name"], format!("Doe, Jane {k}"));
    }
    let cases = app
        .get("/api/v1/cases?limit=1")
        .await
        .expect(StatusCode::OK);
    assert!(cases.body["next_cursor"].is_string());

    // The same file again: every good row unchanged, nothing created.
    let (status, location2, _) = upload(&app, &b, &q, &text).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location2 = location2.unwrap();
    assert_ne!(location2, location);
    app.crm_worker(0).drain().await.unwrap();
    let again = b.get(&location2).await.expect(StatusCode::OK);
    assert_eq!(texts(&again.html, "#import-status"), ["Done"]);
    assert_eq!(count(&again.html, "unchanged"), (n - 1).to_string());
    assert_eq!(count(&again.html, "created"), "0");
    assert_eq!(count(&again.html, "updated"), "0");
    let list = b
        .get("/ui/integrations/lawruler/imports")
        .await
        .expect(StatusCode::OK);
    let rows = texts(&list.html, "#imports tbody tr");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows[0].contains("File leads.csv Done")
            && rows[0].contains(&format!("{n} of {n} 0 0 {} 1", n - 1)),
        "newest first: {rows:?}"
    );
    assert!(
        rows[1].contains(&format!("{n} of {n} {} 0 0 1", n - 1)),
        "{rows:?}"
    );
    assert_eq!(imports_stored(&app).await, 2);

    // Another company's admin does not see it.
    let (other, _) = app.new_company("Other Firm").await;
    app.admin_user(other, "other@firm.test", "correct horse battery")
        .await;
    let ob = Browser::new(&app.base);
    ob.sign_in("other@firm.test", "correct horse battery")
        .await
        .expect(StatusCode::SEE_OTHER);
    ob.get(&location).await.expect(StatusCode::NOT_FOUND);
    let theirs = ob
        .get("/ui/integrations/lawruler/imports")
        .await
        .expect(StatusCode::OK);
    assert!(theirs.html.contains("No imports yet."));
}
casebridge_testkit::backend_test!(
    a_csv_import_shows_its_progress_then_its_counts_and_runs_again_idempotently
);

async fn an_api_import_needs_the_crm_connected_and_says_so_in_place(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let b = app.admin_browser().await;
    let page = b
        .get("/ui/integrations/lawruler/imports")
        .await
        .expect(StatusCode::OK);
    let csrf = page.csrf();
    let r = b
        .post(
            "/ui/integrations/lawruler/imports/api",
            &[("csrf", &csrf), ("since", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.html);
    let err = texts(&r.html, "#api-form #api-error");
    assert!(
        err.len() == 1 && err[0].to_lowercase().contains("connect"),
        "{err:?}"
    );
    assert_eq!(imports_stored(&app).await, 0);

    app.lawruler_connected_offline(app.company_id, &app.api_key)
        .await;
    let r = b
        .post(
            "/ui/integrations/lawruler/imports/api",
            &[("csrf", &csrf), ("since", "yesterday")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        texts(&r.html, "#api-error")[0].contains("is not a date and time"),
        "{}",
        r.html
    );
    assert_eq!(imports_stored(&app).await, 0);
    let r = b
        .post(
            "/ui/integrations/lawruler/imports/api",
            &[("csrf", &csrf), ("since", "2026-01-01T00:00")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.html);
    let page = b.get(r.location().unwrap()).await.expect(StatusCode::OK);
    assert_eq!(texts(&page.html, "#import-status"), ["Queued"]);
    assert_eq!(
        texts(&page.html, "#progress-text"),
        ["Reading the leads from Law Ruler…"]
    );
    assert!(page.html.contains(REFRESH), "{}", page.html);
    let stored = app.get("/api/v1/integrations/lawruler/import").await.body;
    assert_eq!(stored["data"][0]["source"], "lawruler_api");
    assert!(stored["data"][0]["since"].is_string());
}
casebridge_testkit::backend_test!(an_api_import_needs_the_crm_connected_and_says_so_in_place);
