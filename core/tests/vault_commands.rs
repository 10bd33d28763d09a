//! Vaults and credentials: given records / when command / then records or error; secrets are
//! sealed in records and never rendered.

mod object_support;

use std::cell::Cell;

use managed_agents_core::ids::{CredentialId, VaultId, WorkspaceId};
use managed_agents_core::vault::credential::{self, Credential};
use managed_agents_core::vault::{self, SealedSecret, Vault};
use object_support::{at, check_outcome, long, pairs};
use serde_json::{json, Value};

fn vault_of(create: Value, archived: bool) -> Vault {
    let mut records = vault::create(
        serde_json::from_value(create).expect("body"),
        VaultId::parse("vlt_01test").expect("id"),
        WorkspaceId::parse("wrkspc_01test").expect("id"),
        at(0),
    )
    .expect("create");
    if archived {
        records.push(vault::Record::Archived { at: at(9) });
    }
    vault::fold(records).expect("vault")
}

/// A sealing function that never embeds the plaintext: `ct<n>`.
fn sealer() -> impl FnMut(&str) -> SealedSecret {
    let n = Cell::new(0);
    move |_plain: &str| {
        n.set(n.get() + 1);
        SealedSecret(format!("ct{}", n.get()))
    }
}

fn credential_of(auth: Value) -> Credential {
    let vault = vault_of(json!({"display_name": "v"}), false);
    let records = credential::create(
        &vault,
        serde_json::from_value(json!({"auth": auth, "display_name": "c", "metadata": {"a": "1"}}))
            .expect("body"),
        CredentialId::parse("vcrd_01test").expect("id"),
        at(0),
        sealer(),
    )
    .expect("create");
    credential::fold(records).expect("credential")
}

fn bearer() -> Value {
    json!({"type": "static_bearer", "mcp_server_url": "https://mcp.example.com", "token": "plain-token"})
}
fn oauth() -> Value {
    json!({"type": "mcp_oauth", "mcp_server_url": "https://mcp.example.com", "access_token": "plain-access",
           "expires_at": "2030-01-01T00:00:00Z",
           "refresh": {"token_endpoint": "https://auth.example.com/token", "client_id": "cid", "refresh_token": "plain-refresh",
                       "token_endpoint_auth": {"type": "client_secret_basic", "client_secret": "plain-secret"}, "scope": "repo"}})
}
fn env_var() -> Value {
    json!({"type": "environment_variable", "secret_name": "API_KEY", "secret_value": "plain-value",
           "networking": {"type": "limited", "allowed_hosts": ["api.example.com", "*.example.org", "10.0.0.1"]}})
}

#[test]
fn vault_rules() {
    let create_cases: Vec<(&str, Value, Value)> = vec![
        (
            "ok",
            json!({"display_name": "v", "metadata": {"a": "1"}}),
            json!({"records": [{"type": "vault.created", "settings": {"display_name": "v", "metadata": {"a": "1"}}}]}),
        ),
        (
            "display_name empty",
            json!({"display_name": ""}),
            json!({"error": {"field": "display_name"}}),
        ),
        (
            "display_name 256",
            json!({"display_name": long(256)}),
            json!({"error": {"field": "display_name"}}),
        ),
        (
            "17 metadata pairs",
            json!({"display_name": "v", "metadata": pairs(17)}),
            json!({"error": {"code": "invalid_metadata"}}),
        ),
    ];
    for (case, body, then) in create_cases {
        let params = serde_json::from_value(body).expect("body");
        check_outcome(
            case,
            vault::create(
                params,
                VaultId::parse("vlt_01x").expect("id"),
                WorkspaceId::parse("wrkspc_01x").expect("id"),
                at(0),
            ),
            &then,
        );
    }
    let update_cases: Vec<(&str, Value, Value)> = vec![
        ("no-op", json!({}), json!({"records": []})),
        (
            "display_name null keeps",
            json!({"display_name": null, "metadata": null}),
            json!({"records": []}),
        ),
        (
            "rename and patch metadata",
            json!({"display_name": "w", "metadata": {"a": null, "b": "2"}}),
            json!({"records": [
                {"type": "vault.updated", "settings": {"display_name": "w", "metadata": {"b": "2"}}}
            ]}),
        ),
        (
            "empty display name",
            json!({"display_name": ""}),
            json!({"error": {"field": "display_name"}}),
        ),
    ];
    for (case, when, then) in update_cases {
        let v = vault_of(json!({"display_name": "v", "metadata": {"a": "1"}}), false);
        check_outcome(
            case,
            vault::update(&v, serde_json::from_value(when).expect("body"), at(1)),
            &then,
        );
    }
    let archived = vault_of(json!({"display_name": "v"}), true);
    check_outcome(
        "update archived vault",
        vault::update(
            &archived,
            serde_json::from_value(json!({"display_name": "x"})).expect("body"),
            at(10),
        ),
        &json!({"error": {"code": "vault_archived"}}),
    );
    assert!(vault::archive(&archived, at(11))
        .expect("archive")
        .is_empty());
    check_outcome(
        "credential in archived vault",
        credential::create(
            &archived,
            serde_json::from_value(json!({"auth": bearer()})).expect("body"),
            CredentialId::parse("vcrd_01x").expect("id"),
            at(10),
            sealer(),
        ),
        &json!({"error": {"code": "vault_archived"}}),
    );
    assert_eq!(
        serde_json::to_value(archived.render()).expect("json"),
        json!({"type": "vault", "id": "vlt_01test", "display_name": "v", "metadata": {},
               "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:09:00.000Z",
               "archived_at": "2026-01-01T00:09:00.000Z"})
    );
    assert!(archived.catalog_entry().archived);
}

#[test]
fn credential_create_rules() {
    let vault = vault_of(json!({"display_name": "v"}), false);
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "bearer sealed",
            json!({"auth": bearer()}),
            json!({"records": [{"type": "credential.created", "vault_id": "vlt_01test",
            "settings": {"auth": {"type": "static_bearer", "token": "ct1"}}}]}),
        ),
        (
            "oauth sealed",
            json!({"auth": oauth()}),
            json!({"records": [{"settings": {"auth": {"type": "mcp_oauth", "access_token": "ct3",
            "refresh": {"refresh_token": "ct2", "token_endpoint_auth": {"type": "client_secret_basic", "client_secret": "ct1"}}}}}]}),
        ),
        (
            "env var defaults",
            json!({"auth": env_var()}),
            json!({"records": [{"settings": {"auth": {"secret_value": "ct1", "injection_location": {"header": true, "body": false}}}}]}),
        ),
        (
            "bearer without mcp_server_url is a model key bound to the vault's endpoint",
            json!({"auth": {"type": "static_bearer", "token": "model-key"}}),
            json!({"records": [{"type": "credential.created",
            "settings": {"auth": {"type": "static_bearer", "mcp_server_url": null, "token": "ct1",
                                  "llm_binding": {"llm_base_url": null}}}}]}),
        ),
        (
            "bad url",
            json!({"auth": {"type": "static_bearer", "mcp_server_url": "nope", "token": "t"}}),
            json!({"error": {"field": "auth.mcp_server_url"}}),
        ),
        (
            "empty token",
            json!({"auth": {"type": "static_bearer", "mcp_server_url": "https://x.dev", "token": ""}}),
            json!({"error": {"field": "auth.token"}}),
        ),
        (
            "expiry in the past",
            json!({"auth": {"type": "mcp_oauth", "mcp_server_url": "https://x.dev", "access_token": "a", "expires_at": "2020-01-01T00:00:00Z"}}),
            json!({"error": {"field": "auth.expires_at"}}),
        ),
        (
            "bad secret name",
            json!({"auth": {"type": "environment_variable", "secret_name": "1X", "secret_value": "v", "networking": {"type": "unrestricted"}}}),
            json!({"error": {"field": "auth.secret_name"}}),
        ),
        (
            "17 allowed hosts",
            json!({"auth": {"type": "environment_variable", "secret_name": "X", "secret_value": "v", "networking": {"type": "limited", "allowed_hosts": (0..17).map(|i| format!("h{i}.com")).collect::<Vec<_>>()}}}),
            json!({"error": {"field": "auth.networking.allowed_hosts"}}),
        ),
        (
            "display name 256",
            json!({"auth": bearer(), "display_name": long(256)}),
            json!({"error": {"field": "display_name"}}),
        ),
        (
            "17 metadata pairs",
            json!({"auth": bearer(), "metadata": pairs(17)}),
            json!({"error": {"code": "invalid_metadata"}}),
        ),
    ];
    for (case, body, then) in cases {
        let params = serde_json::from_value(body).unwrap_or_else(|e| panic!("{case}: {e}"));
        check_outcome(
            case,
            credential::create(
                &vault,
                params,
                CredentialId::parse("vcrd_01test").expect("id"),
                at(0),
                sealer(),
            ),
            &then,
        );
    }
}

#[test]
fn credential_update_rules() {
    let cases: Vec<(&str, Value, Value, Value)> = vec![
        ("no-op", bearer(), json!({}), json!({"records": []})),
        (
            "type must match",
            bearer(),
            json!({"auth": {"type": "mcp_oauth"}}),
            json!({"error": {"status": 400, "field": "auth.type"}}),
        ),
        (
            "rotate bearer",
            bearer(),
            json!({"auth": {"type": "static_bearer", "token": "new"}}),
            json!({"records": [{"type": "credential.updated", "settings": {"auth": {"token": "ct2"}}}]}),
        ),
        (
            "display name null clears",
            bearer(),
            json!({"display_name": null}),
            json!({"records": [{"settings": {"display_name": null}}]}),
        ),
        (
            "metadata patch",
            bearer(),
            json!({"metadata": {"a": null, "b": "2"}}),
            json!({"records": [{"settings": {"metadata": {"b": "2"}}}]}),
        ),
        (
            "oauth scope empty clears",
            oauth(),
            json!({"auth": {"type": "mcp_oauth", "refresh": {"scope": ""}}}),
            json!({"records": [{"settings": {"auth": {"refresh": {"scope": null, "client_id": "cid"}}}}]}),
        ),
        (
            "oauth client_id immutable",
            oauth(),
            json!({"auth": {"type": "mcp_oauth", "refresh": {"client_id": "other"}}}),
            json!({"error": {"field": "auth.refresh.client_id"}}),
        ),
        (
            "oauth switch to post keeps secret",
            oauth(),
            json!({"auth": {"type": "mcp_oauth", "refresh": {"token_endpoint_auth": {"type": "client_secret_post"}}}}),
            json!({"records": [{"settings": {"auth": {"refresh": {"token_endpoint_auth": {"type": "client_secret_post", "client_secret": "ct1"}}}}}]}),
        ),
        (
            "oauth expiry null clears",
            oauth(),
            json!({"auth": {"type": "mcp_oauth", "expires_at": null}}),
            json!({"records": [{"settings": {"auth": {"expires_at": null}}}]}),
        ),
        (
            "oauth refresh null removes",
            oauth(),
            json!({"auth": {"type": "mcp_oauth", "refresh": null}}),
            json!({"records": [{"settings": {"auth": {"refresh": null}}}]}),
        ),
        (
            "env secret_name immutable",
            env_var(),
            json!({"auth": {"type": "environment_variable", "secret_name": "OTHER"}}),
            json!({"error": {"field": "auth.secret_name"}}),
        ),
        (
            "env injection merges",
            env_var(),
            json!({"auth": {"type": "environment_variable", "injection_location": {"body": true}}}),
            json!({"records": [{"settings": {"auth": {"injection_location": {"header": true, "body": true}}}}]}),
        ),
        (
            "bearer mcp_server_url repeated",
            bearer(),
            json!({"auth": {"type": "static_bearer", "mcp_server_url": "https://mcp.example.com", "token": "new"}}),
            json!({"records": [{"settings": {"auth": {"mcp_server_url": "https://mcp.example.com", "token": "ct2"}}}]}),
        ),
        (
            "bearer mcp_server_url immutable",
            bearer(),
            json!({"auth": {"type": "static_bearer", "mcp_server_url": "http://127.0.0.1:9/listener", "token": "new"}}),
            json!({"error": {"status": 400, "field": "auth.mcp_server_url"}}),
        ),
        (
            "bearer mcp_server_url cannot be added to a model key",
            json!({"type": "static_bearer", "token": "model-key"}),
            json!({"auth": {"type": "static_bearer", "mcp_server_url": "https://mcp.example.com"}}),
            json!({"error": {"status": 400, "field": "auth.mcp_server_url"}}),
        ),
        (
            "oauth mcp_server_url immutable",
            oauth(),
            json!({"auth": {"type": "mcp_oauth", "mcp_server_url": "https://other.example.com"}}),
            json!({"error": {"status": 400, "field": "auth.mcp_server_url"}}),
        ),
        (
            "env networking replaced",
            env_var(),
            json!({"auth": {"type": "environment_variable", "networking": {"type": "unrestricted"}}}),
            json!({"records": [{"settings": {"auth": {"networking": {"type": "unrestricted"}}}}]}),
        ),
    ];
    for (case, auth, when, then) in cases {
        let c = credential_of(auth);
        let params = serde_json::from_value(when).unwrap_or_else(|e| panic!("{case}: {e}"));
        let mut later = sealer();
        later("skip the ciphertexts used at creation");
        let vault = vault_of(json!({"display_name": "v"}), false);
        check_outcome(
            case,
            credential::update(&vault, &c, params, at(1), later),
            &then,
        );
    }
    let c = credential_of(bearer());
    let archived = credential::fold([
        credential::Record::Created {
            id: c.id.clone(),
            vault_id: c.vault_id.clone(),
            workspace: c.workspace.clone(),
            settings: c.settings.clone(),
            at: at(0),
        },
        credential::Record::Archived { at: at(2) },
    ])
    .expect("credential");
    check_outcome(
        "update archived credential",
        credential::update(
            &vault_of(json!({"display_name": "v"}), false),
            &archived,
            serde_json::from_value(json!({"display_name": "x"})).expect("body"),
            at(3),
            sealer(),
        ),
        &json!({"error": {"code": "credential_archived"}}),
    );
    assert_eq!(
        archived.catalog_entry().parent.as_deref(),
        Some("vlt_01test")
    );
}

#[test]
fn secrets_are_never_in_records_or_responses() {
    for auth in [bearer(), oauth(), env_var()] {
        let vault = vault_of(json!({"display_name": "v"}), false);
        let records = credential::create(
            &vault,
            serde_json::from_value(json!({"auth": auth})).expect("body"),
            CredentialId::parse("vcrd_01test").expect("id"),
            at(0),
            sealer(),
        )
        .expect("create");
        for record in &records {
            let bytes = record.encode();
            assert!(!String::from_utf8_lossy(&bytes).contains("plain-"));
            assert_eq!(&credential::Record::decode(&bytes).expect("decode"), record);
        }
        let rendered =
            serde_json::to_string(&credential::fold(records).expect("c").render()).expect("json");
        for word in [
            "plain-",
            "ct1",
            "\"token\":",
            "\"secret_value\":",
            "\"client_secret\":",
            "\"refresh_token\":",
            "\"access_token\":",
        ] {
            assert!(!rendered.contains(word), "{rendered} contains {word}");
        }
    }
    assert_eq!(format!("{:?}", SealedSecret("x".into())), "SealedSecret(…)");
}

fn vault_at(url: Option<&str>) -> Vault {
    let mut metadata = serde_json::Map::new();
    metadata.insert("sandbox0.managed_agents.role".into(), json!("llm"));
    if let Some(url) = url {
        metadata.insert("sandbox0.managed_agents.llm_base_url".into(), json!(url));
    }
    vault_of(json!({"display_name": "llm", "metadata": metadata}), false)
}

fn repoint(vault: &Vault, url: &str) -> Vault {
    let mut records = vec![vault::Record::Created {
        id: vault.id.clone(),
        workspace: vault.workspace.clone(),
        settings: vault.settings.clone(),
        at: at(0),
    }];
    records.extend(
        vault::update(
            vault,
            serde_json::from_value(
                json!({"metadata": {"sandbox0.managed_agents.llm_base_url": url}}),
            )
            .expect("body"),
            at(1),
        )
        .expect("update"),
    );
    vault::fold(records).expect("vault")
}

fn create_in(vault: &Vault, auth: Value) -> Credential {
    let records = credential::create(
        vault,
        serde_json::from_value(json!({"auth": auth})).expect("body"),
        CredentialId::parse("vcrd_01test").expect("id"),
        at(0),
        sealer(),
    )
    .expect("create");
    credential::fold(records).expect("credential")
}

#[test]
fn a_model_key_is_bound_to_the_endpoint_it_was_entered_for() {
    let a = vault_at(Some("https://llm-a.example/v1"));
    let key = create_in(&a, json!({"type": "static_bearer", "token": "model-key"}));
    let (sealed, binding) = key.settings.auth.model_key().expect("a model key");
    assert_eq!(sealed, &SealedSecret("ct1".into()));
    let binding = binding.expect("bound");
    assert_eq!(
        binding.llm_base_url.as_deref(),
        Some("https://llm-a.example/v1")
    );
    assert!(binding.allows(&a));
    assert!(binding.allows(&repoint(&a, "https://llm-a.example/v1/")));

    // Re-pointing the vault does not carry the key along.
    let b = repoint(&a, "http://127.0.0.1:9/listener");
    assert!(!binding.allows(&b));
    assert!(!binding.allows(&vault_at(None)));

    // Metadata or display-name changes keep the binding; entering the token again rebinds it.
    let renamed = credential::update(
        &b,
        &key,
        serde_json::from_value(json!({"display_name": "renamed"})).expect("body"),
        at(2),
        sealer(),
    )
    .expect("update");
    let renamed = credential::fold(
        std::iter::once(credential::Record::Created {
            id: key.id.clone(),
            vault_id: key.vault_id.clone(),
            workspace: key.workspace.clone(),
            settings: key.settings.clone(),
            at: at(0),
        })
        .chain(renamed),
    )
    .expect("credential");
    assert!(!renamed
        .settings
        .auth
        .model_key()
        .and_then(|(_, b)| b)
        .expect("bound")
        .allows(&b));
    let rotated = credential::update(
        &b,
        &key,
        serde_json::from_value(json!({"auth": {"type": "static_bearer", "token": "again"}}))
            .expect("body"),
        at(2),
        sealer(),
    )
    .expect("update");
    check_outcome(
        "rotation rebinds",
        Ok(rotated),
        &json!({"records": [{"settings": {"auth": {
            "token": "ct1", "llm_binding": {"llm_base_url": "http://127.0.0.1:9/listener"}}}}]}),
    );

    // Without an llm_base_url the key is bound to "none" (the provider's public API).
    let default = create_in(
        &vault_at(None),
        json!({"type": "static_bearer", "token": "k"}),
    );
    let binding = default.settings.auth.model_key().and_then(|(_, b)| b);
    assert_eq!(binding.expect("bound").llm_base_url, None);
    assert!(binding.expect("bound").allows(&vault_at(None)));
    assert!(!binding.expect("bound").allows(&a));
}

#[test]
fn an_mcp_credential_is_never_a_model_key() {
    let a = vault_at(Some("https://llm-a.example"));
    for auth in [bearer(), oauth(), env_var()] {
        let c = create_in(&a, auth);
        assert!(c.settings.auth.model_key().is_none(), "{c:?}");
        let stored = serde_json::to_value(&c.settings.auth).expect("json");
        assert!(stored.get("llm_binding").is_none(), "{stored}");
    }
    // A record written before bindings existed decodes as an unbound model key.
    let legacy: credential::Auth = serde_json::from_value(
        json!({"type": "static_bearer", "mcp_server_url": null, "token": "ct"}),
    )
    .expect("decode");
    let (_, binding) = legacy.model_key().expect("a model key");
    assert!(binding.is_none());
}

fn oauth_tokens(c: &Credential) -> (String, Option<managed_agents_core::time::Timestamp>, String) {
    match &c.settings.auth {
        credential::Auth::McpOauth {
            access_token,
            expires_at,
            refresh: Some(refresh),
            ..
        } => (
            access_token.0.clone(),
            *expires_at,
            refresh.refresh_token.0.clone(),
        ),
        other => panic!("not a refreshable mcp_oauth credential: {other:?}"),
    }
}

/// `c` after `records`.
fn after(c: &Credential, records: Vec<credential::Record>) -> Credential {
    let mut next = Some(c.clone());
    for record in &records {
        <Credential as managed_agents_core::object::Object>::apply(&mut next, record);
    }
    next.expect("credential")
}

#[test]
fn refreshed_tokens_replace_the_access_token_and_a_rotated_refresh_token_only() {
    let c = credential_of(oauth());
    let (_, _, stored_refresh) = oauth_tokens(&c);
    let tokens = credential::RefreshedTokens {
        access_token: SealedSecret("new-access".into()),
        expires_at: Some(at(5)),
        refresh_token: None,
    };
    let once = after(
        &c,
        credential::refreshed(&c, tokens.clone(), at(2)).expect("refreshed"),
    );
    assert_eq!(
        oauth_tokens(&once),
        ("new-access".into(), Some(at(5)), stored_refresh)
    );
    assert_eq!(once.settings.display_name, c.settings.display_name);
    assert_eq!(once.settings.metadata, c.settings.metadata);

    // A rotated refresh token replaces the stored one.
    let rotated = credential::RefreshedTokens {
        refresh_token: Some(SealedSecret("new-refresh".into())),
        expires_at: None,
        ..tokens.clone()
    };
    let twice = after(
        &once,
        credential::refreshed(&once, rotated, at(3)).expect("refreshed"),
    );
    assert_eq!(
        oauth_tokens(&twice),
        ("new-access".into(), None, "new-refresh".into())
    );

    // Nothing to refresh: a bearer credential, an archived one.
    let err =
        credential::refreshed(&credential_of(bearer()), tokens.clone(), at(2)).expect_err("bearer");
    assert_eq!(err.error_code(), Some("not_refreshable"));
    let archived = after(&c, vec![credential::Record::Archived { at: at(1) }]);
    let err = credential::refreshed(&archived, tokens, at(2)).expect_err("archived");
    assert_eq!(err.error_code(), Some("credential_archived"));
}
