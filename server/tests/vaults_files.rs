//! Router tests for vaults and credentials (secrets never echoed), files (multipart upload,
//! download with the stored content type) and session resources (GitHub token never echoed).

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{test_app, TestApp, KEY, OTHER_KEY};
use serde_json::json;

#[tokio::test]
async fn credential_secrets_are_write_only() {
    let h = test_app().await;
    let vault = h
        .call("POST", "/v1/vaults", Some(json!({"display_name": "v"})))
        .await;
    vault.assert_status(StatusCode::OK);
    let vid = vault.json()["id"].as_str().expect("id").to_owned();
    let created = h
        .call(
            "POST",
            &format!("/v1/vaults/{vid}/credentials"),
            Some(json!({"auth": {"type": "static_bearer", "mcp_server_url": "https://mcp.example.com/sse", "token": "SUPERSECRET"}})),
        )
        .await;
    created.assert_status(StatusCode::OK);
    assert!(!created.text().contains("SUPERSECRET"));
    let cid = created.json()["id"].as_str().expect("id").to_owned();
    let listed = h
        .call("GET", &format!("/v1/vaults/{vid}/credentials"), None)
        .await;
    assert!(!listed.text().contains("SUPERSECRET"));
    assert_eq!(listed.json()["data"][0]["id"], cid);
    let foreign = h
        .call_as(OTHER_KEY, "GET", &format!("/v1/vaults/{vid}"), None)
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    let bad = h
        .call(
            "POST",
            &format!("/v1/vaults/{vid}/credentials"),
            Some(
                json!({"auth": {"type": "static_bearer", "mcp_server_url": "nope", "token": "x"}}),
            ),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.message().contains("mcp_server_url"),
        "{}",
        bad.message()
    );
    let archived = h
        .call("POST", &format!("/v1/vaults/{vid}/archive"), None)
        .await
        .json();
    assert!(archived["archived_at"].is_string());
    let credential = h
        .call("GET", &format!("/v1/vaults/{vid}/credentials/{cid}"), None)
        .await
        .json();
    assert!(credential["archived_at"].is_string());
}

#[tokio::test]
async fn static_bearer_without_mcp_server_url() {
    let h = test_app().await;
    let vault = h
        .call("POST", "/v1/vaults", Some(json!({"display_name": "llm"})))
        .await
        .json();
    let vid = vault["id"].as_str().expect("id");
    let created = h
        .call(
            "POST",
            &format!("/v1/vaults/{vid}/credentials"),
            Some(json!({"auth": {"type": "static_bearer", "token": "sk-MODELKEY"}})),
        )
        .await;
    created.assert_status(StatusCode::OK);
    assert!(!created.text().contains("sk-MODELKEY"));
    let auth = &created.json()["auth"];
    assert_eq!(
        auth,
        &json!({"type": "static_bearer", "mcp_server_url": null})
    );
    let cid = created.json()["id"].as_str().expect("id").to_owned();
    let rotated = h
        .call(
            "POST",
            &format!("/v1/vaults/{vid}/credentials/{cid}"),
            Some(json!({"auth": {"type": "static_bearer", "token": "sk-ROTATED"}})),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK);
    assert_eq!(rotated.json()["auth"]["mcp_server_url"], json!(null));
}

fn multipart(filename: &str, content_type: &str, content: &str) -> (String, String) {
    let boundary = "XBOUNDARYX";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n{content}\r\n--{boundary}--\r\n"
    );
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn files_upload_download_list_delete() {
    let h = test_app().await;
    let (content_type, body) = multipart("dir/notes.txt", "text/x-custom", "hello bytes");
    let request = Request::post("/v1/files")
        .header("x-api-key", KEY)
        .header("content-type", content_type)
        .body(Body::from(body))
        .expect("request");
    let uploaded = h.send(request).await;
    uploaded.assert_status(StatusCode::OK);
    let file = uploaded.json();
    assert_eq!(file["filename"], "notes.txt");
    assert_eq!(file["size_bytes"], 11);
    let id = file["id"].as_str().expect("id").to_owned();
    assert_eq!(file["downloadable"], false);
    // As hosted, an upload is not downloadable (unless `serve --uploads-downloadable`).
    let content = h
        .call("GET", &format!("/v1/files/{id}/content"), None)
        .await;
    assert_eq!(content.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        content.json()["error"]["details"]["error_code"],
        "file_not_downloadable"
    );
    let listed = h.call("GET", "/v1/files", None).await.json();
    assert_eq!(listed["data"][0]["id"], id);
    assert_eq!(listed["has_more"], false);
    let by_id = h
        .call(
            "GET",
            &format!("/v1/files?ids%5B%5D={id}&ids[]=file_01missing"),
            None,
        )
        .await
        .json();
    assert_eq!(by_id["data"].as_array().map(Vec::len), Some(1));
    let deleted = h
        .call("DELETE", &format!("/v1/files/{id}"), None)
        .await
        .json();
    assert_eq!(deleted, json!({"id": id, "type": "file_deleted"}));
    assert_eq!(
        h.call("GET", &format!("/v1/files/{id}"), None).await.status,
        StatusCode::NOT_FOUND
    );
    let missing_part = h.call("POST", "/v1/files", None).await;
    assert_eq!(missing_part.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn github_tokens_are_never_rendered() {
    let h = test_app().await;
    let created = h
        .create_session(json!({"resources": [{"type": "github_repository", "url": "https://github.com/o/repo", "authorization_token": "ghp_SECRET"}]}))
        .await;
    created.assert_status(StatusCode::OK);
    assert!(!created.text().contains("ghp_SECRET"));
    let session = created.json();
    let resource = &session["resources"][0];
    assert_eq!(resource["mount_path"], "/workspace/repo");
    let sid = session["id"].as_str().expect("id");
    let rid = resource["id"].as_str().expect("id");
    let listed = h
        .call("GET", &format!("/v1/sessions/{sid}/resources"), None)
        .await
        .json();
    assert_eq!(listed["data"][0]["id"], rid);
    let rotated = h
        .call(
            "POST",
            &format!("/v1/sessions/{sid}/resources/{rid}"),
            Some(json!({"authorization_token": "ghp_NEW"})),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK);
    assert!(!rotated.text().contains("ghp_NEW"));
    let events = h
        .call("GET", &format!("/v1/sessions/{sid}/events"), None)
        .await;
    assert!(!events.text().contains("ghp_"));
}

async fn upload(h: &TestApp, name: &str) -> String {
    let (content_type, body) = multipart(name, "text/plain", "bytes");
    let request = Request::post("/v1/files")
        .header("x-api-key", KEY)
        .header("content-type", content_type)
        .body(Body::from(body))
        .expect("request");
    h.send(request).await.json()["id"]
        .as_str()
        .expect("file id")
        .to_owned()
}

#[tokio::test]
async fn session_resources_are_added_rotated_and_deleted() {
    let h = test_app().await;
    let file_id = upload(&h, "a.txt").await;
    let session = h
        .create_session(json!({"resources": [{"type": "file", "file_id": file_id}]}))
        .await
        .json();
    let sid = session["id"].as_str().expect("id").to_owned();
    let first = session["resources"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let resources = format!("/v1/sessions/{sid}/resources");

    let added = h
        .call(
            "POST",
            &resources,
            Some(json!({"type": "file", "file_id": file_id, "mount_path": "/data/a.txt"})),
        )
        .await;
    added.assert_status(StatusCode::OK);
    let added = added.json();
    assert_eq!(added["type"], "file");
    assert_eq!(added["mount_path"], "/data/a.txt");
    let added_id = added["id"].as_str().expect("id").to_owned();
    let repo = h
        .call(
            "POST",
            &resources,
            Some(
                json!({"type": "github_repository", "url": "https://github.com/o/tool.git",
                        "authorization_token": "ghp_ADDEDSECRET"}),
            ),
        )
        .await;
    assert_eq!(repo.status, StatusCode::OK);
    assert!(!repo.text().contains("ghp_"));
    let repo = repo.json();
    assert_eq!(repo["mount_path"], "/workspace/tool");
    let repo_id = repo["id"].as_str().expect("id").to_owned();

    let listed = h.call("GET", &resources, None).await.json();
    let listed: Vec<_> = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| r["id"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(listed, [first.clone(), added_id.clone(), repo_id.clone()]);
    let retrieved = h
        .call("GET", &format!("/v1/sessions/{sid}"), None)
        .await
        .json();
    assert_eq!(retrieved["resources"].as_array().map(Vec::len), Some(3));

    let rotated = h
        .call(
            "POST",
            &format!("{resources}/{repo_id}"),
            Some(json!({"authorization_token": "ghp_ROTATEDSECRET"})),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK);
    assert!(!rotated.text().contains("ghp_"));
    assert!(rotated.json()["updated_at"].as_str() >= repo["updated_at"].as_str());
    let not_rotatable = h
        .call(
            "POST",
            &format!("{resources}/{added_id}"),
            Some(json!({"authorization_token": "t"})),
        )
        .await;
    assert_eq!(not_rotatable.status, StatusCode::BAD_REQUEST);
    let empty = h
        .call(
            "POST",
            &format!("{resources}/{repo_id}"),
            Some(json!({"authorization_token": ""})),
        )
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert!(empty.message().contains("authorization_token"));

    // Tokens are sealed in the session's records, never stored or listed in plain text.
    let stored = managed_agents_core::storage::read_all(
        &h.state.store,
        &managed_agents_core::storage::StreamId::new(sid.as_str()),
    )
    .await
    .expect("records");
    for record in &stored {
        let text = String::from_utf8_lossy(&record.payload);
        assert!(!text.contains("ADDEDSECRET") && !text.contains("ROTATEDSECRET"));
    }
    let events = h
        .call("GET", &format!("/v1/sessions/{sid}/events"), None)
        .await;
    assert_eq!(events.json()["data"], json!([]));

    let deleted = h
        .call("DELETE", &format!("{resources}/{first}"), None)
        .await;
    assert_eq!(
        deleted.json(),
        json!({"id": first, "type": "session_resource_deleted"})
    );
    assert_eq!(
        h.call("GET", &format!("{resources}/{first}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.call("DELETE", &format!("{resources}/{first}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let missing = h
        .call(
            "POST",
            &resources,
            Some(json!({"type": "file", "file_id": "file_01missing"})),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        missing.message().contains("file_id"),
        "{}",
        missing.message()
    );
    let memory = h
        .call(
            "POST",
            &resources,
            Some(json!({"type": "memory_store", "memory_store_id": "memstore_01x"})),
        )
        .await;
    assert_eq!(memory.status, StatusCode::BAD_REQUEST);
    let foreign = h
        .call_as(
            OTHER_KEY,
            "POST",
            &resources,
            Some(json!({"type": "file", "file_id": file_id})),
        )
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);

    h.call("POST", &format!("/v1/sessions/{sid}/archive"), None)
        .await;
    let archived = h
        .call(
            "POST",
            &resources,
            Some(json!({"type": "file", "file_id": file_id})),
        )
        .await;
    assert_eq!(archived.status, StatusCode::CONFLICT);
    let archived = h
        .call("DELETE", &format!("{resources}/{added_id}"), None)
        .await;
    assert_eq!(archived.status, StatusCode::CONFLICT);
    assert_eq!(
        h.call("GET", &resources, None).await.json()["data"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}
