//! Every response object fixture (written from the API reference field lists) parses into its
//! type and serialises back to the same JSON; resources and files are also built by commands.

mod object_support;

use std::path::Path;

use managed_agents_core::agent::AgentObject;
use managed_agents_core::environment::EnvironmentObject;
use managed_agents_core::file::{self, FileObject, NewFile};
use managed_agents_core::ids::{FileId, ResourceId, SessionId, WorkspaceId};
use managed_agents_core::resource::{self, MemoryStoreInfo, ResourceObject};
use managed_agents_core::vault::credential::CredentialObject;
use managed_agents_core::vault::{SealedSecret, VaultObject};
use object_support::{at, summary};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

fn fixture(name: &str) -> Value {
    let path = Path::new(
        &std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
    )
    .join("tests/fixtures/objects")
    .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).expect("fixture exists");
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn round_trip<T: Serialize + DeserializeOwned>(name: &str) -> T {
    let value = fixture(name);
    let parsed: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{name} does not parse: {e}"));
    let back = serde_json::to_value(&parsed).expect("serialises");
    assert_eq!(back, value, "{name} does not round-trip");
    parsed
}

#[test]
fn every_fixture_round_trips() {
    round_trip::<AgentObject>("agent");
    round_trip::<AgentObject>("agent_all_tools");
    round_trip::<EnvironmentObject>("environment_cloud_limited");
    round_trip::<EnvironmentObject>("environment_self_hosted");
    round_trip::<VaultObject>("vault");
    round_trip::<CredentialObject>("credential_static_bearer");
    round_trip::<CredentialObject>("credential_static_bearer_no_url");
    round_trip::<CredentialObject>("credential_mcp_oauth");
    round_trip::<CredentialObject>("credential_environment_variable");
    round_trip::<ResourceObject>("resource_file");
    round_trip::<ResourceObject>("resource_github_repository");
    round_trip::<ResourceObject>("resource_memory_store");
    round_trip::<FileObject>("file");
}

fn seal(plain: &str) -> SealedSecret {
    SealedSecret(format!("sealed-{}", plain.len()))
}

#[test]
fn resources_resolve_to_the_fixture_shapes() {
    let id = |s: &str| ResourceId::parse(s).expect("id");
    let file = resource::resolve(
        serde_json::from_value(json!({"type": "file", "file_id": "file_01Input"})).expect("body"),
        id("sesrsc_01File"),
        at(0),
        None,
        seal,
    )
    .expect("file");
    let mut expected = fixture("resource_file");
    expected["created_at"] = json!("2026-01-01T00:00:00.000Z");
    expected["updated_at"] = json!("2026-01-01T00:00:00.000Z");
    assert_eq!(serde_json::to_value(file.render()).expect("json"), expected);

    let repo = resource::resolve(
        serde_json::from_value(
            json!({"type": "github_repository", "url": "https://github.com/anthropics/skills.git",
            "authorization_token": "ghp_plain", "checkout": {"type": "branch", "name": "main"}}),
        )
        .expect("body"),
        id("sesrsc_01Repo"),
        at(0),
        None,
        seal,
    )
    .expect("repo");
    assert!(!String::from_utf8_lossy(&repo.encode()).contains("ghp_plain"));
    let rotated = repo
        .rotate(
            serde_json::from_value(json!({"authorization_token": "ghp_new_token"})).expect("body"),
            at(60),
            seal,
        )
        .expect("rotate");
    let rendered = serde_json::to_value(rotated.render()).expect("json");
    assert_eq!(rendered["mount_path"], json!("/workspace/skills"));
    assert_eq!(rendered["updated_at"], json!("2026-01-01T01:00:00.000Z"));
    assert!(rendered.get("authorization_token").is_none());
    let not_rotatable = file.rotate(
        serde_json::from_value(json!({"authorization_token": "x"})).expect("body"),
        at(1),
        seal,
    );
    assert_eq!(
        summary(&not_rotatable.expect_err("file"))["status"],
        json!(400)
    );

    let store = resource::resolve(
        serde_json::from_value(json!({"type": "memory_store", "memory_store_id": "memstore_01Prefs", "access": "read_only",
            "instructions": "Check the user's preferences before answering."}))
        .expect("body"),
        id("sesrsc_01Unused"),
        at(0),
        Some(&MemoryStoreInfo { name: "User preferences".into(), description: String::new() }),
        seal,
    )
    .expect("store");
    assert_eq!(
        serde_json::to_value(store.render()).expect("json"),
        fixture("resource_memory_store")
    );

    let long_instructions = resource::resolve(
        serde_json::from_value(json!({"type": "memory_store", "memory_store_id": "m", "instructions": "x".repeat(4097)})).expect("body"),
        id("sesrsc_01X"),
        at(0),
        Some(&MemoryStoreInfo { name: "n".into(), description: String::new() }),
        seal,
    );
    assert_eq!(
        summary(&long_instructions.expect_err("too long"))["field"],
        json!("instructions")
    );
    let bad_mount = resource::resolve(
        serde_json::from_value(
            json!({"type": "file", "file_id": "file_01X", "mount_path": "../etc"}),
        )
        .expect("body"),
        id("sesrsc_01X"),
        at(0),
        None,
        seal,
    );
    assert_eq!(
        summary(&bad_mount.expect_err("relative"))["field"],
        json!("mount_path")
    );
    assert!(resource::check_addable(
        &serde_json::from_value(json!({"type": "memory_store", "memory_store_id": "m"}))
            .expect("body")
    )
    .is_err());
    assert!(resource::check_file_count(998).is_ok());
    assert!(resource::check_file_count(999).is_err());
    assert_eq!(
        resource::memory_mount_path("  My Notes!! 2026 "),
        "/mnt/memory/my-notes-2026"
    );
}

#[test]
fn files_build_the_fixture_shape() {
    let new = NewFile {
        filename: "outputs/report.pdf".into(),
        mime_type: None,
        size_bytes: 48213,
        expires_in_seconds: None,
        scope: Some(SessionId::parse("sesn_01abc").expect("id")),
        downloadable: true,
    };
    let records = file::create(
        new.clone(),
        FileId::parse("file_01Report").expect("id"),
        WorkspaceId::parse("wrkspc_01x").expect("id"),
        at(0),
    )
    .expect("create");
    let stored = file::fold(records.clone()).expect("file");
    let mut expected = fixture("file");
    expected["created_at"] = json!("2026-01-01T00:00:00.000Z");
    assert_eq!(
        serde_json::to_value(stored.render()).expect("json"),
        expected
    );
    assert_eq!(
        file::Record::decode(&records[0].encode()).expect("decode"),
        records[0]
    );
    assert_eq!(stored.catalog_entry().parent.as_deref(), Some("sesn_01abc"));
    assert!(stored.check_download(at(1)).is_ok());

    let upload = NewFile {
        downloadable: false,
        scope: None,
        expires_in_seconds: Some(3600),
        ..new.clone()
    };
    let uploaded = file::fold(
        file::create(
            upload,
            FileId::parse("file_01Up").expect("id"),
            WorkspaceId::parse("wrkspc_01x").expect("id"),
            at(0),
        )
        .expect("create"),
    )
    .expect("file");
    assert_eq!(uploaded.metadata.expires_at, Some(at(60)));
    assert_eq!(
        uploaded
            .check_download(at(1))
            .expect_err("upload")
            .error_code(),
        Some("file_not_downloadable")
    );
    let expired = uploaded.check_download(at(60)).expect_err("expired");
    assert_eq!(
        (expired.status(), expired.error_code()),
        (404, Some("file_expired"))
    );
    for secs in [3599, 7_776_001] {
        let bad = NewFile {
            expires_in_seconds: Some(secs),
            ..new.clone()
        };
        let err = file::create(
            bad,
            FileId::parse("file_01B").expect("id"),
            WorkspaceId::parse("wrkspc_01x").expect("id"),
            at(0),
        )
        .expect_err("range");
        assert_eq!(err.field(), Some("expires_in_seconds"));
    }
    assert_eq!(file::base_name("C:\\Users\\me\\a.txt"), "a.txt");
}
