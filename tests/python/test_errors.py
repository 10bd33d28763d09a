"""Wire rules of API §1 and §3: auth, the error envelope, `request-id`, 404s, 413, headers."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from conftest import Server, unique

BODY_LIMIT = 32 * 1024 * 1024


def test_wrong_key_is_401(server: Server) -> None:
    bad = server.client(key="sk-test-this-key-does-not-exist-000")
    with pytest.raises(anthropic.AuthenticationError) as err:
        bad.beta.agents.list()
    assert err.value.status_code == 401
    assert err.value.body["type"] == "error"
    assert err.value.body["error"]["type"] == "authentication_error"
    assert err.value.request_id and err.value.request_id.startswith("req_")
    assert err.value.body["request_id"] == err.value.request_id


def test_missing_key_is_401(server: Server) -> None:
    response = httpx.get(f"{server.url}/v1/agents")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert response.headers["request-id"].startswith("req_")


@pytest.mark.parametrize("style", ["x-api-key", "bearer"])
def test_key_accepted_as_header_or_bearer(server: Server, style: str) -> None:
    headers = {"x-api-key": server.key} if style == "x-api-key" else {"Authorization": f"Bearer {server.key}"}
    # Neither anthropic-version nor anthropic-beta is required; any version is accepted.
    response = httpx.get(f"{server.url}/v1/agents", headers=headers)
    assert response.status_code == 200, response.text
    response = httpx.get(f"{server.url}/v1/agents", headers={**headers, "anthropic-version": "1999-01-01"})
    assert response.status_code == 200, response.text
    assert set(response.json()) >= {"data", "next_page"}


def test_sdk_sends_bearer_and_it_works(client: anthropic.Anthropic) -> None:
    raw = client.beta.agents.with_raw_response.list()
    assert raw.http_request.headers["authorization"].startswith("Bearer ")
    assert raw.status_code == 200


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.beta.agents.retrieve("agent_01doesnotexist000000000"),
        lambda c: c.beta.agents.retrieve("not-even-an-id"),
        lambda c: c.beta.environments.retrieve("env_01doesnotexist0000000000"),
        lambda c: c.beta.sessions.retrieve("sesn_01doesnotexist0000000000"),
        lambda c: c.beta.vaults.retrieve("vlt_01doesnotexist0000000000"),
        lambda c: c.beta.files.retrieve_metadata("file_01doesnotexist00000000000"),
        lambda c: c.beta.sessions.events.list("sesn_01doesnotexist0000000000"),
    ],
    ids=["agent", "malformed-id", "environment", "session", "vault", "file", "events"],
)
def test_unknown_ids_are_404(client: anthropic.Anthropic, call) -> None:
    with pytest.raises(anthropic.NotFoundError) as err:
        call(client)
    assert err.value.body["error"]["type"] == "not_found_error"
    assert err.value.request_id.startswith("req_")


def test_unknown_route_is_404_in_envelope(server: Server) -> None:
    response = httpx.get(f"{server.url}/v1/no_such_thing", headers={"x-api-key": server.key})
    assert response.status_code == 404
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "not_found_error"
    assert response.headers["request-id"] == response.json()["request_id"]


def test_request_id_on_success_and_error(client: anthropic.Anthropic) -> None:
    ok = client.beta.agents.with_raw_response.create(name=unique("agent"), model="claude-sonnet-4-6")
    assert ok.headers["request-id"].startswith("req_")
    assert ok.request_id == ok.headers["request-id"]
    again = client.beta.agents.with_raw_response.list()
    assert again.headers["request-id"] != ok.headers["request-id"]
    with pytest.raises(anthropic.BadRequestError) as err:
        client.beta.agents.create(name="", model="claude-sonnet-4-6")
    assert err.value.response.headers["request-id"] == err.value.request_id
    assert err.value.body["request_id"] == err.value.request_id


def test_malformed_json_is_400(server: Server) -> None:
    response = httpx.post(
        f"{server.url}/v1/agents",
        headers={"x-api-key": server.key, "content-type": "application/json"},
        content=b'{"name": "x", "model": ',
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "JSON" in response.json()["error"]["message"]


def test_wrong_field_type_names_the_field(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as err:
        client.post("/v1/agents", body={"name": "x", "model": "claude-sonnet-4-6", "metadata": {"k": 5}}, cast_to=object)
    assert "metadata" in err.value.message


def test_oversized_body_is_413(server: Server) -> None:
    client = server.client(max_retries=0)
    huge = "x" * (BODY_LIMIT + 1024)
    with pytest.raises(anthropic.APIStatusError) as err:
        client.beta.agents.create(name=unique("agent"), model="claude-sonnet-4-6", system=huge)
    assert err.value.status_code == 413
    assert err.value.body["error"]["type"] == "request_too_large"
    assert err.value.response.headers["request-id"].startswith("req_")


def test_oversized_event_batch_is_413(server: Server, session) -> None:
    client = server.client(max_retries=0)
    huge = "y" * (BODY_LIMIT + 1024)
    with pytest.raises(anthropic.APIStatusError) as err:
        client.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": huge}]}])
    assert err.value.status_code == 413
    assert list(client.beta.sessions.events.list(session.id)) == []


def test_method_not_allowed_in_envelope(server: Server) -> None:
    response = httpx.put(f"{server.url}/v1/agents", headers={"x-api-key": server.key}, json={})
    assert response.status_code == 405
    assert response.json()["type"] == "error"
    assert response.headers["request-id"].startswith("req_")


def test_operational_endpoints(server: Server) -> None:
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    metrics = httpx.get(f"{server.url}/metrics")
    assert metrics.status_code == 200
    assert "text/plain" in metrics.headers["content-type"]
    assert "# TYPE" in metrics.text
