//! Router tests for agents and environments: validation naming the field, 409 with
//! `x-should-retry: false`, workspace isolation and pagination.

mod common;

use axum::http::StatusCode;
use common::{test_app, test_app_on, OTHER_KEY};
use serde_json::json;

#[tokio::test]
async fn create_retrieve_update_with_stale_version_conflicts() {
    let h = test_app().await;
    let created = h
        .call(
            "POST",
            "/v1/agents",
            Some(json!({"name": "a", "model": "claude-sonnet-4-6"})),
        )
        .await;
    created.assert_status(StatusCode::OK);
    let agent = created.json();
    assert_eq!(agent["type"], "agent");
    assert_eq!(agent["version"], 1);
    let id = agent["id"].as_str().expect("id").to_owned();

    let updated = h
        .call(
            "POST",
            &format!("/v1/agents/{id}"),
            Some(json!({"version": 1, "system": "be brief"})),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK);
    assert_eq!(updated.json()["version"], 2);

    let stale = h
        .call(
            "POST",
            &format!("/v1/agents/{id}"),
            Some(json!({"version": 1, "system": "x"})),
        )
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert_eq!(stale.header("x-should-retry"), Some("false"));
    assert_eq!(stale.error_type(), "invalid_request_error");
    assert!(stale.message().contains("stale"), "{}", stale.message());

    let v1 = h
        .call("GET", &format!("/v1/agents/{id}?version=1"), None)
        .await;
    assert_eq!(v1.json()["system"], serde_json::Value::Null);
    let versions = h
        .call("GET", &format!("/v1/agents/{id}/versions?limit=1"), None)
        .await;
    let page = versions.json();
    assert_eq!(page["data"][0]["version"], 2);
    let next = page["next_page"].as_str().expect("next page");
    let rest = h
        .call(
            "GET",
            &format!("/v1/agents/{id}/versions?limit=1&page={next}"),
            None,
        )
        .await;
    assert_eq!(rest.json()["data"][0]["version"], 1);
    assert_eq!(rest.json()["next_page"], serde_json::Value::Null);
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    let h = test_app().await;
    let missing = h
        .call("POST", "/v1/agents", Some(json!({"name": "a"})))
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert!(missing.message().contains("model"), "{}", missing.message());
    let empty = h
        .call(
            "POST",
            "/v1/agents",
            Some(json!({"name": "", "model": "claude-sonnet-4-6"})),
        )
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert!(empty.message().contains("name"), "{}", empty.message());
    let bad_json = h
        .send(
            axum::http::Request::post("/v1/agents")
                .header("x-api-key", common::KEY)
                .body(axum::body::Body::from("{\"name\":"))
                .expect("request"),
        )
        .await;
    assert_eq!(bad_json.status, StatusCode::BAD_REQUEST);
    assert!(bad_json.message().contains("JSON"));
}

#[tokio::test]
async fn other_workspaces_get_404() {
    let h = test_app().await;
    let agent = h
        .call(
            "POST",
            "/v1/agents",
            Some(json!({"name": "a", "model": "claude-sonnet-4-6"})),
        )
        .await
        .json();
    let id = agent["id"].as_str().expect("id");
    let foreign = h
        .call_as(OTHER_KEY, "GET", &format!("/v1/agents/{id}"), None)
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    assert_eq!(foreign.error_type(), "not_found_error");
    let list = h.call_as(OTHER_KEY, "GET", "/v1/agents", None).await;
    assert_eq!(list.json()["data"], json!([]));
}

#[tokio::test]
async fn list_pages_newest_first() {
    let h = test_app().await;
    for i in 0..3 {
        h.call(
            "POST",
            "/v1/agents",
            Some(json!({"name": format!("a{i}"), "model": "claude-sonnet-4-6"})),
        )
        .await;
    }
    let first = h.call("GET", "/v1/agents?limit=2", None).await.json();
    assert_eq!(first["data"][0]["name"], "a2");
    assert_eq!(first["data"][1]["name"], "a1");
    let next = first["next_page"].as_str().expect("next");
    let second = h
        .call("GET", &format!("/v1/agents?limit=2&page={next}"), None)
        .await
        .json();
    assert_eq!(second["data"][0]["name"], "a0");
    assert_eq!(second["next_page"], serde_json::Value::Null);
    let bad = h.call("GET", "/v1/agents?limit=500", None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.message().contains("limit"));
}

#[tokio::test]
async fn environments_have_unique_names_and_delete() {
    let h = test_app().await;
    let env = h
        .call("POST", "/v1/environments", Some(json!({"name": "e"})))
        .await;
    env.assert_status(StatusCode::OK);
    let env = env.json();
    assert_eq!(env["config"]["type"], "cloud");
    let dup = h
        .call("POST", "/v1/environments", Some(json!({"name": "e"})))
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(dup.header("x-should-retry"), Some("false"));
    let id = env["id"].as_str().expect("id");
    let deleted = h
        .call("DELETE", &format!("/v1/environments/{id}"), None)
        .await
        .json();
    assert_eq!(deleted, json!({"id": id, "type": "environment_deleted"}));
    let gone = h.call("GET", &format!("/v1/environments/{id}"), None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let h = test_app().await;
    let big = "x".repeat(managed_agents_server::BODY_LIMIT + 10);
    let reply = h
        .call(
            "POST",
            "/v1/agents",
            Some(json!({"name": big, "model": "m"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.error_type(), "request_too_large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_one_environment_name_yield_one_environment() {
    let h = std::sync::Arc::new(test_app().await);
    for round in 0..20 {
        let name = format!("race-{round}");
        let creates: Vec<_> = (0..8)
            .map(|_| {
                let (h, name) = (h.clone(), name.clone());
                tokio::spawn(async move {
                    h.call("POST", "/v1/environments", Some(json!({ "name": name })))
                        .await
                        .status
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for create in creates {
            statuses.push(create.await.expect("request task"));
        }
        let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        let conflicts = statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count();
        assert_eq!((ok, conflicts), (1, 7), "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn environment_names_stay_unique_across_apps_sharing_a_store() {
    let first = std::sync::Arc::new(test_app().await);
    let second = std::sync::Arc::new(test_app_on(first.state.store.clone()));
    for round in 0..20 {
        let name = format!("shared-{round}");
        let creates: Vec<_> = (0..8)
            .map(|i| {
                let h = if i % 2 == 0 {
                    first.clone()
                } else {
                    second.clone()
                };
                let name = name.clone();
                tokio::spawn(async move {
                    h.call("POST", "/v1/environments", Some(json!({ "name": name })))
                        .await
                        .status
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for create in creates {
            statuses.push(create.await.expect("request task"));
        }
        let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        let conflicts = statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count();
        assert_eq!((ok, conflicts), (1, 7), "round {round}");
    }

    // Renames to one name from both apps: one wins; the loser keeps its name.
    let a = first
        .call("POST", "/v1/environments", Some(json!({"name": "a"})))
        .await
        .json();
    let b = second
        .call("POST", "/v1/environments", Some(json!({"name": "b"})))
        .await
        .json();
    let (uri_a, uri_b) = (
        format!("/v1/environments/{}", a["id"].as_str().unwrap()),
        format!("/v1/environments/{}", b["id"].as_str().unwrap()),
    );
    let (ra, rb) = tokio::join!(
        first.call("POST", &uri_a, Some(json!({"name": "target"}))),
        second.call("POST", &uri_b, Some(json!({"name": "target"}))),
    );
    let mut statuses = [ra.status, rb.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
    // The renamed environment's old name is free again; the loser still holds its own.
    let (winner_old, loser_old) = if ra.status == StatusCode::OK {
        ("a", "b")
    } else {
        ("b", "a")
    };
    let reuse = second
        .call(
            "POST",
            "/v1/environments",
            Some(json!({"name": winner_old})),
        )
        .await;
    assert_eq!(reuse.status, StatusCode::OK, "{}", reuse.message());
    let taken = first
        .call("POST", "/v1/environments", Some(json!({"name": loser_old})))
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);

    // Deleting through one app frees the name for the other.
    let gone = first
        .call("POST", "/v1/environments", Some(json!({"name": "gone"})))
        .await
        .json();
    let deleted = second
        .call(
            "DELETE",
            &format!("/v1/environments/{}", gone["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    let again = first
        .call("POST", "/v1/environments", Some(json!({"name": "gone"})))
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.message());
}
