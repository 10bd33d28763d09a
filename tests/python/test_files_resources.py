"""Files (API §14) through `client.beta.files`, and session resources (API §9) through
`client.beta.sessions.resources`."""

from __future__ import annotations

import os
import secrets

import anthropic
import httpx
import pytest

from conftest import Server

MISSING_FILE = "file_01doesnotexist00000000000"


@pytest.fixture
def uploaded(client: anthropic.Anthropic):
    return client.beta.files.upload(file=("data.csv", b"a,b\n1,2\n", "text/csv"))


def test_upload_metadata_and_no_download(client: anthropic.Anthropic) -> None:
    content = b"name,score\nada,10\n"
    meta = client.beta.files.upload(file=("scores.csv", content, "text/csv"))
    assert meta.type == "file"
    assert meta.id.startswith("file_")
    assert meta.filename == "scores.csv"
    assert meta.mime_type == "text/csv"
    assert meta.size_bytes == len(content)
    assert meta.created_at is not None
    assert meta.expires_at is None
    assert meta.downloadable is False and meta.scope is None
    got = client.beta.files.retrieve_metadata(meta.id)
    assert got.id == meta.id and got.filename == "scores.csv" and got.size_bytes == len(content)
    # As hosted: an upload's bytes go into sessions, not back out (outputs do: test_files_mounts.py).
    with pytest.raises(anthropic.BadRequestError) as err:
        client.beta.files.download(meta.id)
    assert err.value.body["error"]["details"]["error_code"] == "file_not_downloadable"  # type: ignore[index]


def test_binary_metadata_keeps_the_content_type(client: anthropic.Anthropic) -> None:
    content = bytes(range(256)) + os.urandom(64 * 1024)
    meta = client.beta.files.upload(file=("blob.bin", content, "application/x-custom-binary"))
    assert meta.mime_type == "application/x-custom-binary"
    assert meta.size_bytes == len(content)


def test_upload_keeps_last_path_component_and_expiry(client: anthropic.Anthropic) -> None:
    meta = client.beta.files.upload(file=("nested/dir/notes.txt", b"hello", "text/plain"), expires_in_seconds=3600)
    assert meta.filename == "notes.txt"
    assert meta.expires_at is not None


def test_upload_invalid(server: Server, client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError):
        client.beta.files.upload(file=("x.txt", b"x", "text/plain"), expires_in_seconds=10)
    # A multipart body without a `file` part.
    response = httpx.post(
        f"{server.url}/v1/files",
        headers={"x-api-key": server.key},
        files={"other": ("x.txt", b"x", "text/plain")},
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "file" in response.json()["error"]["message"]


def test_list_and_delete(client: anthropic.Anthropic) -> None:
    made = [client.beta.files.upload(file=(f"f{i}.txt", f"{i}".encode(), "text/plain")) for i in range(3)]
    page = client.beta.files.list(limit=2)
    assert len(page.data) == 2
    assert page.next_page
    ids = [f.id for f in client.beta.files.list(limit=2)]
    assert len(ids) == len(set(ids))
    for meta in made:
        assert meta.id in ids
    by_ids = client.beta.files.list(ids=[made[0].id, made[2].id, MISSING_FILE])
    assert sorted(f.id for f in by_ids.data) == sorted([made[0].id, made[2].id])
    deleted = client.beta.files.delete(made[1].id)
    assert deleted.id == made[1].id and deleted.type == "file_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.beta.files.retrieve_metadata(made[1].id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.files.download(made[1].id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.files.delete(made[1].id)
    assert made[1].id not in [f.id for f in client.beta.files.list(limit=1000)]


def test_list_filters(client: anthropic.Anthropic, session, uploaded) -> None:
    # Session outputs are scoped to the session; an upload is not.
    assert client.beta.files.list(scope_id=session.id).data == []
    with pytest.raises(anthropic.BadRequestError):
        client.beta.files.list(scope_id="not-a-session")
    with pytest.raises(anthropic.BadRequestError):
        client.beta.files.list(ids=[uploaded.id], limit=5)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.files.list(limit=1001)
    raw = client.beta.files.with_raw_response.list(limit=1).http_response.json()
    assert set(raw) >= {"data", "next_page"}


def test_unknown_file_is_404(client: anthropic.Anthropic) -> None:
    for call in (
        lambda: client.beta.files.retrieve_metadata(MISSING_FILE),
        lambda: client.beta.files.download(MISSING_FILE),
        lambda: client.beta.files.delete(MISSING_FILE),
    ):
        with pytest.raises(anthropic.NotFoundError):
            call()


# ---------------------------------------------------------------------------------------------
# Session resources


def test_session_with_file_resource(client: anthropic.Anthropic, make_session, uploaded) -> None:
    session = make_session(resources=[{"type": "file", "file_id": uploaded.id}])
    assert len(session.resources) == 1
    resource = session.resources[0]
    assert resource.type == "file"
    assert resource.file_id == uploaded.id
    assert resource.mount_path == f"/mnt/session/uploads/{uploaded.id}"
    assert resource.id
    listed = client.beta.sessions.resources.list(session.id)
    assert [r.id for r in listed.data] == [resource.id]
    got = client.beta.sessions.resources.retrieve(resource.id, session_id=session.id)
    assert got.type == "file" and got.file_id == uploaded.id
    custom = make_session(resources=[{"type": "file", "file_id": uploaded.id, "mount_path": "/data/in.csv"}])
    assert custom.resources[0].mount_path == "/data/in.csv"
    # Rotation applies only to github_repository resources.
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.resources.update(resource.id, session_id=session.id, authorization_token="t")
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.resources.retrieve("sesrsc_01doesnotexist000000", session_id=session.id)
    with pytest.raises(anthropic.NotFoundError):
        make_session(resources=[{"type": "file", "file_id": MISSING_FILE}])


def test_session_with_github_repository_token_write_only(server: Server, client: anthropic.Anthropic, make_session) -> None:
    token = f"ghp_SECRET{secrets.token_hex(12)}"
    session = make_session(
        resources=[
            {
                "type": "github_repository",
                "url": "https://github.com/example/repo",
                "authorization_token": token,
                "checkout": {"type": "branch", "name": "main"},
            }
        ]
    )
    resource = session.resources[0]
    assert resource.type == "github_repository"
    assert resource.url == "https://github.com/example/repo"
    assert resource.mount_path == "/workspace/repo"
    assert resource.checkout.type == "branch" and resource.checkout.name == "main"
    texts = [
        client.beta.sessions.with_raw_response.retrieve(session.id).text(),
        client.beta.sessions.resources.with_raw_response.list(session.id).text(),
        client.beta.sessions.resources.with_raw_response.retrieve(resource.id, session_id=session.id).text(),
    ]
    rotated = f"ghp_ROTATED{secrets.token_hex(12)}"
    upd = client.beta.sessions.resources.with_raw_response.update(
        resource.id, session_id=session.id, authorization_token=rotated
    )
    texts.append(upd.text())
    assert upd.parse().id == resource.id
    for text in texts:
        assert token not in text and rotated not in text
    log = server.process.log_tail(100000)
    assert token not in log and rotated not in log
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.resources.update(resource.id, session_id=session.id, authorization_token="")


def test_add_file_resource(client: anthropic.Anthropic, session, uploaded) -> None:
    added = client.beta.sessions.resources.add(session.id, type="file", file_id=uploaded.id)
    assert added.type == "file"
    assert added.file_id == uploaded.id
    assert added.id
    assert [r.id for r in client.beta.sessions.resources.list(session.id).data] == [added.id]
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.resources.add(session.id, type="file", file_id=MISSING_FILE)


def test_delete_resource(client: anthropic.Anthropic, make_session, uploaded) -> None:
    session = make_session(resources=[{"type": "file", "file_id": uploaded.id}])
    resource = session.resources[0]
    deleted = client.beta.sessions.resources.delete(resource.id, session_id=session.id)
    assert deleted.id == resource.id
    assert deleted.type == "session_resource_deleted"
    assert client.beta.sessions.resources.list(session.id).data == []
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.resources.retrieve(resource.id, session_id=session.id)


def test_resources_of_unknown_session_are_404(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.resources.list("sesn_01doesnotexist0000000000")
