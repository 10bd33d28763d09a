"""Vaults and credentials (API §11) through `client.beta.vaults` and `.credentials`.

Secret fields are write-only: they must never come back in any response body (checked on the
raw JSON text), in the server's log, or in plain text in the data directory.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path

import anthropic
import pytest

from conftest import Server, unique

MISSING_VAULT = "vlt_01doesnotexist0000000000"
MISSING_CREDENTIAL = "vcrd_01doesnotexist000000000"


def secret(label: str) -> str:
    return f"SECRET-{label}-{secrets.token_hex(12)}"


def assert_nowhere(server: Server, texts: list[str], *values: str) -> None:
    for value in values:
        for text in texts:
            assert value not in text, f"secret {value!r} leaked in a response"
        assert value not in server.process.log_tail(100000), f"secret {value!r} leaked in the log"
        if server.storage == "rocksdb":
            for path in Path(server.process.data_dir).rglob("*"):
                if path.is_file():
                    assert value.encode() not in path.read_bytes(), f"secret {value!r} stored in clear in {path}"


def bearer(token: str) -> dict:
    return {"type": "static_bearer", "mcp_server_url": "https://mcp.example.com/x", "token": token}


@pytest.fixture
def vault(client: anthropic.Anthropic):
    return client.beta.vaults.create(display_name=unique("vault"))


def test_vault_crud(client: anthropic.Anthropic) -> None:
    name = unique("vault")
    vault = client.beta.vaults.create(
        display_name=name, metadata={"team": "qa", "sandbox0.managed_agents.harness": "claude"}
    )
    assert vault.type == "vault"
    assert vault.id.startswith("vlt_")
    assert vault.display_name == name
    assert vault.metadata == {"team": "qa", "sandbox0.managed_agents.harness": "claude"}
    assert vault.archived_at is None
    assert client.beta.vaults.retrieve(vault.id).display_name == name
    updated = client.beta.vaults.update(vault.id, display_name="renamed", metadata={"team": None, "x": "y"})
    assert updated.display_name == "renamed"
    assert updated.metadata == {"sandbox0.managed_agents.harness": "claude", "x": "y"}
    ids = [v.id for v in client.beta.vaults.list(limit=1)]  # auto-pagination with pages of 1
    assert vault.id in ids and len(ids) == len(set(ids))
    archived = client.beta.vaults.archive(vault.id)
    assert archived.archived_at is not None
    assert vault.id not in [v.id for v in client.beta.vaults.list(limit=100)]
    assert vault.id in [v.id for v in client.beta.vaults.list(include_archived=True, limit=100)]
    deleted = client.beta.vaults.delete(vault.id)
    assert deleted.id == vault.id and deleted.type == "vault_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.beta.vaults.retrieve(vault.id)


def test_vault_errors(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError):
        client.beta.vaults.create(display_name="")
    with pytest.raises(anthropic.BadRequestError):
        client.beta.vaults.create(display_name="x" * 256)
    for call in (
        lambda: client.beta.vaults.retrieve(MISSING_VAULT),
        lambda: client.beta.vaults.update(MISSING_VAULT, display_name="x"),
        lambda: client.beta.vaults.archive(MISSING_VAULT),
        lambda: client.beta.vaults.delete(MISSING_VAULT),
        lambda: client.beta.vaults.credentials.list(MISSING_VAULT),
    ):
        with pytest.raises(anthropic.NotFoundError):
            call()


def test_static_bearer_secret_never_returned(server: Server, client: anthropic.Anthropic, vault) -> None:
    token = secret("bearer")
    raw = client.beta.vaults.credentials.with_raw_response.create(
        vault.id,
        display_name="github",
        metadata={"k": "v"},
        auth={"type": "static_bearer", "mcp_server_url": "https://mcp.example.com/github", "token": token},
    )
    texts = [raw.text()]
    cred = raw.parse()
    assert cred.type == "vault_credential"
    assert cred.id.startswith("vcrd_")
    assert cred.vault_id == vault.id
    assert cred.display_name == "github"
    assert cred.metadata == {"k": "v"}
    assert cred.auth.type == "static_bearer"
    assert cred.auth.mcp_server_url == "https://mcp.example.com/github"
    assert not hasattr(cred.auth, "token") or getattr(cred.auth, "token", None) is None
    texts.append(client.beta.vaults.credentials.with_raw_response.retrieve(cred.id, vault_id=vault.id).text())
    texts.append(client.beta.vaults.credentials.with_raw_response.list(vault.id).text())
    rotated = secret("rotated")
    upd = client.beta.vaults.credentials.with_raw_response.update(
        cred.id, vault_id=vault.id, auth={"type": "static_bearer", "token": rotated}, display_name="gh"
    )
    texts.append(upd.text())
    assert upd.parse().display_name == "gh"
    assert_nowhere(server, texts, token, rotated)


def test_static_bearer_without_url(client: anthropic.Anthropic, vault) -> None:
    # Issue 3 asks for `static_bearer` "with or without `mcp_server_url`" (SDK 2.14.0's param
    # type marks it Required, but a caller may omit it with a plain dict).
    cred = client.beta.vaults.credentials.create(vault.id, auth={"type": "static_bearer", "token": secret("t")})
    assert cred.auth.type == "static_bearer"
    assert cred.auth.mcp_server_url is None


def test_mcp_oauth_secrets_never_returned(server: Server, client: anthropic.Anthropic, vault) -> None:
    access, refresh, client_secret = secret("access"), secret("refresh"), secret("client")
    expires = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    raw = client.beta.vaults.credentials.with_raw_response.create(
        vault.id,
        auth={
            "type": "mcp_oauth",
            "mcp_server_url": "https://mcp.example.com/linear",
            "access_token": access,
            "expires_at": expires,
            "refresh": {
                "token_endpoint": "https://auth.example.com/token",
                "client_id": "client-123",
                "refresh_token": refresh,
                "token_endpoint_auth": {"type": "client_secret_post", "client_secret": client_secret},
                "scope": "read write",
            },
        },
    )
    cred = raw.parse()
    assert cred.auth.type == "mcp_oauth"
    assert cred.auth.mcp_server_url == "https://mcp.example.com/linear"
    assert cred.auth.expires_at is not None
    assert cred.auth.refresh.client_id == "client-123"
    assert cred.auth.refresh.token_endpoint == "https://auth.example.com/token"
    assert cred.auth.refresh.token_endpoint_auth.type == "client_secret_post"
    assert cred.auth.refresh.scope == "read write"
    texts = [
        raw.text(),
        client.beta.vaults.credentials.with_raw_response.retrieve(cred.id, vault_id=vault.id).text(),
        client.beta.vaults.credentials.with_raw_response.list(vault.id, include_archived=True).text(),
    ]
    assert_nowhere(server, texts, access, refresh, client_secret)


def test_credential_rules(client: anthropic.Anthropic, vault) -> None:
    cred = client.beta.vaults.credentials.create(vault.id, auth=bearer(secret("t")))
    # Rotation must keep the type.
    with pytest.raises(anthropic.BadRequestError):
        client.beta.vaults.credentials.update(
            cred.id, vault_id=vault.id, auth={"type": "mcp_oauth", "access_token": secret("a")}
        )
    with pytest.raises(anthropic.BadRequestError):
        client.beta.vaults.credentials.create(vault.id, auth={"type": "no_such_auth", "token": "x"})
    with pytest.raises(anthropic.BadRequestError):
        client.beta.vaults.credentials.create(
            vault.id, auth={"type": "mcp_oauth", "mcp_server_url": "https://m.example.com", "access_token": "a",
                            "expires_at": "2000-01-01T00:00:00Z"}
        )
    # A credential is only reachable through its own vault.
    other = client.beta.vaults.create(display_name=unique("vault"))
    with pytest.raises(anthropic.NotFoundError):
        client.beta.vaults.credentials.retrieve(cred.id, vault_id=other.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.vaults.credentials.retrieve(MISSING_CREDENTIAL, vault_id=vault.id)


def test_credential_list_archive_delete(client: anthropic.Anthropic, vault) -> None:
    creds = [
        client.beta.vaults.credentials.create(vault.id, display_name=f"c{i}", auth=bearer(secret(str(i))))
        for i in range(3)
    ]
    page = client.beta.vaults.credentials.list(vault.id, limit=2)
    assert len(page.data) == 2 and page.next_page
    listed = [c.id for c in client.beta.vaults.credentials.list(vault.id, limit=2)]
    assert sorted(listed) == sorted(c.id for c in creds)
    archived = client.beta.vaults.credentials.archive(creds[0].id, vault_id=vault.id)
    assert archived.archived_at is not None
    assert creds[0].id not in [c.id for c in client.beta.vaults.credentials.list(vault.id)]
    assert creds[0].id in [c.id for c in client.beta.vaults.credentials.list(vault.id, include_archived=True)]
    deleted = client.beta.vaults.credentials.delete(creds[1].id, vault_id=vault.id)
    assert deleted.id == creds[1].id and deleted.type == "vault_credential_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.beta.vaults.credentials.retrieve(creds[1].id, vault_id=vault.id)
    # Archiving the vault archives its credentials.
    client.beta.vaults.archive(vault.id)
    assert client.beta.vaults.credentials.retrieve(creds[2].id, vault_id=vault.id).archived_at is not None


def test_session_with_vault(client: anthropic.Anthropic, make_session, vault) -> None:
    session = make_session(vault_ids=[vault.id])
    assert session.vault_ids == [vault.id]
    with pytest.raises(anthropic.NotFoundError):
        make_session(vault_ids=[MISSING_VAULT])
