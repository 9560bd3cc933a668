//! The Scheduling screen against the scheduling simulator, on both backends: connect with a
//! live check, the key masked, disconnect, agents with booking and Event Type ID.

use casebridge_sim::scheduling::{EventTypeSpec, SchedulingSim, WeeklyHours};
use casebridge_testkit::{TestApp, TestOptions};
use reqwest::StatusCode;
use scraper::{Html, Selector};

const KEY: &str = "cal_live_9f3c2a7b5d1e4f60a8b7c6d5e4f3a2b1";

fn texts(html: &str, css: &str) -> Vec<String> {
    Html::parse_document(html)
        .select(&Selector::parse(css).unwrap())
        .map(|e| {
            e.text()
                .collect::<String>()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

async fn connect_a_key_then_set_up_an_agent_that_can_book(
    backend: casebridge_testkit::TestBackend,
) {
    let sim = SchedulingSim::new();
    let user = sim.add_user("firm", "calendar@firm.example", "America/New_York");
    sim.add_key(user, KEY);
    sim.add_event_type(EventTypeSpec::new(
        100,
        user,
        30,
        WeeklyHours::weekdays("America/New_York", "09:00", "12:00"),
    ));
    let sim = sim.start().await;
    let app = TestApp::start_with(
        backend,
        TestOptions {
            scheduling_url: sim.base_url.clone(),
            ..TestOptions::default()
        },
    )
    .await;
    let b = app.admin_browser().await;
    let page = b.get("/ui/scheduling").await.expect(StatusCode::OK);
    assert_eq!(texts(&page.html, "#connection .badge"), ["Not connected"]);
    let csrf = page.csrf();

    // A key the service refuses is named next to the field; nothing is stored.
    let r = b
        .post(
            "/ui/scheduling/connect",
            &[("csrf", &csrf), ("api_key", "cal_live_wrong")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.html);
    assert_eq!(texts(&r.html, "#api_key-error").len(), 1, "{}", r.html);
    let api = app
        .get("/api/v1/integrations/scheduling")
        .await
        .expect(StatusCode::OK);
    assert_eq!(api.body["status"], "not_connected");

    b.post(
        "/ui/scheduling/connect",
        &[("csrf", &csrf), ("api_key", KEY)],
    )
    .await
    .expect(StatusCode::SEE_OTHER);
    let page = b.get("/ui/scheduling").await.expect(StatusCode::OK);
    assert_eq!(texts(&page.html, "#connection .badge"), ["Connected"]);
    assert!(!page.html.contains(KEY), "the key is never shown in full");
    let masked = texts(&page.html, "#masked-key");
    assert!(masked[0].contains('•'), "{masked:?}");

    // An agent: a bad Event Type ID is named; then one that can book.
    let r = b
        .post(
            "/ui/scheduling/agents",
            &[
                ("csrf", &csrf),
                ("name", "Intake bot"),
                ("appointment_booking", "on"),
                ("event_type_id", "abc"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(texts(&r.html, "#new-agent .field-error")[0]
        .contains("number at the end of the event type's URL"));
    assert!(
        app.get("/api/v1/agents").await.expect(StatusCode::OK).body["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    b.post(
        "/ui/scheduling/agents",
        &[
            ("csrf", &csrf),
            ("name", "Intake bot"),
            ("appointment_booking", "on"),
        ],
    )
    .await
    .expect(StatusCode::SEE_OTHER);
    let page = b.get("/ui/scheduling").await.expect(StatusCode::OK);
    assert!(page.html.contains("Agent Intake bot added."));
    assert!(page
        .html
        .contains("Set an Event Type ID to let this agent book."));
    let agents = app.get("/api/v1/agents").await.expect(StatusCode::OK).body;
    let id = agents["data"][0]["id"].as_str().unwrap().to_owned();
    b.post(
        &format!("/ui/scheduling/agents/{id}"),
        &[
            ("csrf", &csrf),
            ("name", "Intake bot"),
            ("appointment_booking", "on"),
            ("event_type_id", "100"),
        ],
    )
    .await
    .expect(StatusCode::SEE_OTHER);
    let agent = app
        .get(&format!("/api/v1/agents/{id}"))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(agent["event_type_id"], 100);
    assert_eq!(agent["appointment_booking"], true);
    let page = b.get("/ui/scheduling").await.expect(StatusCode::OK);
    assert_eq!(texts(&page.html, "#agents legend .badge"), ["Can book"]);

    // Disconnect deletes the key; the agent then cannot book.
    b.post("/ui/scheduling/disconnect", &[("csrf", &csrf)])
        .await
        .expect(StatusCode::SEE_OTHER);
    let page = b.get("/ui/scheduling").await.expect(StatusCode::OK);
    assert_eq!(texts(&page.html, "#connection .badge"), ["Not connected"]);
    assert!(page
        .html
        .contains("Connect the scheduling API key above first."));
    // Another company's admin cannot change this agent.
    let (other, _) = app.new_company("Other Firm").await;
    app.admin_user(other, "eve@other.test", "correct horse battery")
        .await;
    let eve = casebridge_testkit::Browser::new(&app.base);
    eve.sign_in("eve@other.test", "correct horse battery")
        .await
        .expect(StatusCode::SEE_OTHER);
    let their = eve.get("/ui/scheduling").await.expect(StatusCode::OK);
    assert!(!their.html.contains("Intake bot"));
    let r = eve
        .post(
            &format!("/ui/scheduling/agents/{id}"),
            &[
                ("csrf", &their.csrf()),
                ("name", "Hijacked"),
                ("event_type_id", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let agent = app
        .get(&format!("/api/v1/agents/{id}"))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(agent["name"], "Intake bot");
}
casebridge_testkit::backend_test!(connect_a_key_then_set_up_an_agent_that_can_book);
