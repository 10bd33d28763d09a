//! Router tests for vaults and credentials (secrets never echoed), files (multipart upload,
//! download with the stored content type) and session resources (GitHub token never echoed).

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{harness, KEY, OTHER_KEY};
use serde_json::json;

#[tokio::test]
async fn credential_secrets_are_write_only() {
    let h = harness().await;
    let vault = h
        .call("POST", "/v1/vaults", Some(json!({"display_name": "v"})))
        .await;
    assert_eq!(
        vault.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&vault.bytes)
    );
    let vid = vault.json()["id"].as_str().expect("id").to_owned();
    let created = h
        .call(
            "POST",
            &format!("/v1/vaults/{vid}/credentials"),
            Some(json!({"auth": {"type": "static_bearer", "mcp_server_url": "https://mcp.example.com/sse", "token": "SUPERSECRET"}})),
        )
        .await;
    assert_eq!(
        created.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&created.bytes)
    );
    assert!(!String::from_utf8_lossy(&created.bytes).contains("SUPERSECRET"));
    let cid = created.json()["id"].as_str().expect("id").to_owned();
    let listed = h
        .call("GET", &format!("/v1/vaults/{vid}/credentials"), None)
        .await;
    assert!(!String::from_utf8_lossy(&listed.bytes).contains("SUPERSECRET"));
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
    let h = harness().await;
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
    assert_eq!(
        created.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&created.bytes)
    );
    assert!(!String::from_utf8_lossy(&created.bytes).contains("sk-MODELKEY"));
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
    let h = harness().await;
    let (content_type, body) = multipart("dir/notes.txt", "text/x-custom", "hello bytes");
    let request = Request::post("/v1/files")
        .header("x-api-key", KEY)
        .header("content-type", content_type)
        .body(Body::from(body))
        .expect("request");
    let uploaded = h.send(request).await;
    assert_eq!(
        uploaded.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&uploaded.bytes)
    );
    let file = uploaded.json();
    assert_eq!(file["filename"], "notes.txt");
    assert_eq!(file["size_bytes"], 11);
    let id = file["id"].as_str().expect("id").to_owned();
    let content = h
        .call("GET", &format!("/v1/files/{id}/content"), None)
        .await;
    assert_eq!(content.status, StatusCode::OK);
    assert_eq!(content.header("content-type"), Some("text/x-custom"));
    assert_eq!(content.bytes, b"hello bytes");
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
    let h = harness().await;
    let agent = h
        .call(
            "POST",
            "/v1/agents",
            Some(json!({"name": "a", "model": "claude-sonnet-4-6"})),
        )
        .await
        .json();
    let env = h
        .call("POST", "/v1/environments", Some(json!({"name": "e"})))
        .await
        .json();
    let created = h
        .call(
            "POST",
            "/v1/sessions",
            Some(json!({"agent": agent["id"], "environment_id": env["id"],
                        "resources": [{"type": "github_repository", "url": "https://github.com/o/repo", "authorization_token": "ghp_SECRET"}]})),
        )
        .await;
    assert_eq!(
        created.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&created.bytes)
    );
    assert!(!String::from_utf8_lossy(&created.bytes).contains("ghp_SECRET"));
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
    assert!(!String::from_utf8_lossy(&rotated.bytes).contains("ghp_NEW"));
    let events = h
        .call("GET", &format!("/v1/sessions/{sid}/events"), None)
        .await;
    assert!(!String::from_utf8_lossy(&events.bytes).contains("ghp_"));
}
