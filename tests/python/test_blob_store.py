"""File and skill bytes outside the data dir (issue 14): `serve --blob-store s3` against a local
S3-compatible server (moto_server on loopback), and `--blob-dir`, one directory two API nodes
over one PostgreSQL share."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any, Iterator

import anthropic
import boto3
import httpx
import pytest

from conftest import PgCluster, ServerProcess, free_port, new_key
from harness_support import (  # noqa: F401
    Harness,
    MockModel,
    bash,
    llm_vault,
    mock,
    searchable,
    text,
    tool_results,
    wait_for,
)
from test_skills import SCRIPT, skill_files

#: Static credentials moto accepts; the server reads them from the standard AWS variables.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret"}
#: Bigger than two of the server's 5 MiB upload parts: a multipart upload with a short last part.
LARGE = 11 * 1024 * 1024 + 12345


@dataclasses.dataclass
class S3:
    """A moto_server on loopback and a boto3 client of it."""

    url: str
    client: Any

    def bucket(self, name: str) -> str:
        self.client.create_bucket(Bucket=name)
        return name

    def objects(self, bucket: str) -> dict[str, int]:
        listed = self.client.list_objects_v2(Bucket=bucket)
        return {o["Key"]: o["Size"] for o in listed.get("Contents", [])}

    def unfinished_uploads(self, bucket: str) -> list[Any]:
        return self.client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/moto-api/", timeout=2)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start")
                time.sleep(0.05)
        with pytest.MonkeyPatch.context() as env:
            for name, value in CREDENTIALS.items():
                env.setenv(name, value)
            env.delenv("AWS_SESSION_TOKEN", raising=False)
            client = boto3.client(
                "s3",
                endpoint_url=url,
                region_name="us-east-1",
                aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            )
            yield S3(url=url, client=client)
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def s3_args(s3: S3, bucket: str) -> list[str]:
    return [
        "--blob-store",
        "s3",
        "--s3-bucket",
        bucket,
        "--s3-endpoint",
        s3.url,
        "--s3-allow-http",
        "--uploads-downloadable",
    ]


def skill_objects(s3: S3, bucket: str, files: set[str]) -> set[str]:
    return set(s3.objects(bucket)) - files


def test_files_and_skills_live_in_the_bucket_and_survive_a_restart(tmp_path: Path, s3: S3) -> None:
    bucket = s3.bucket("agents-files")
    key = new_key()
    data_dir = tmp_path / "data"
    args = s3_args(s3, bucket)
    process = ServerProcess("rocksdb", data_dir, key, tmp_path / "server.log", args=args).start()
    try:
        client = process.client()
        assert httpx.get(process.url + "/readyz", timeout=10).status_code == 200
        large = os.urandom(LARGE)
        big = client.beta.files.upload(file=("big.bin", large, "application/octet-stream"))
        small = client.beta.files.upload(file=("small.txt", b"hello bucket\n", "text/plain"))
        assert big.size_bytes == LARGE
        # One object per file, keyed by its id; nothing under the data dir; no upload left open.
        assert s3.objects(bucket) == {big.id: LARGE, small.id: 13}
        assert s3.unfinished_uploads(bucket) == []
        assert not (data_dir / "files").exists() or list((data_dir / "files").iterdir()) == []
        assert client.beta.files.download(big.id).read() == large
        assert client.beta.files.download(small.id).read() == b"hello bucket\n"
        listed = {f.id for f in client.beta.files.list(limit=100)}
        assert {big.id, small.id} <= listed

        skill = client.beta.skills.create(files=skill_files())
        version = skill.latest_version_id
        assert len(skill_objects(s3, bucket, {big.id, small.id})) == 2  # SKILL.md and the script
    finally:
        assert process.stop() == 0

    process = ServerProcess("rocksdb", data_dir, key, tmp_path / "server.log", args=args).start()
    try:
        client = process.client()
        assert client.beta.files.download(big.id).read() == large
        archive = client.beta.skills.versions.download(version, skill_id=skill.id)
        with zipfile.ZipFile(io.BytesIO(archive.read())) as z:
            assert z.read("csv-tools/scripts/count.py") == SCRIPT

        # Deleting a file or a skill removes its objects.
        client.beta.files.delete(big.id)
        assert big.id not in s3.objects(bucket)
        with pytest.raises(anthropic.NotFoundError):
            client.beta.files.download(big.id)
        client.beta.files.delete(small.id)
        client.beta.skills.delete(skill.id)
        assert s3.objects(bucket) == {}
    finally:
        assert process.stop() == 0


def test_an_abandoned_upload_leaves_no_object(tmp_path: Path, s3: S3) -> None:
    """A client that goes away after the first part was sent: the multipart upload is aborted
    and neither an object nor its parts remain."""
    bucket = s3.bucket("agents-abandoned")
    key = new_key()
    process = ServerProcess("rocksdb", tmp_path / "data", key, tmp_path / "server.log", args=s3_args(s3, bucket)).start()
    try:
        boundary = "blobstoretestboundary"
        head = (
            f'--{boundary}\r\ncontent-disposition: form-data; name="file"; filename="gone.bin"\r\n'
            "content-type: application/octet-stream\r\n\r\n"
        ).encode()
        url = httpx.URL(process.url)
        with socket.create_connection((url.host, url.port), timeout=30) as sock:
            sock.sendall(
                (
                    f"POST /v1/files HTTP/1.1\r\nhost: test\r\nx-api-key: {key}\r\n"
                    f"content-type: multipart/form-data; boundary={boundary}\r\n"
                    f"content-length: {len(head) + LARGE}\r\n\r\n"
                ).encode()
                + head
            )
            sock.sendall(os.urandom(7 * 1024 * 1024))
            # The first part went up: a multipart upload is open.
            wait_for(lambda: s3.unfinished_uploads(bucket))
        wait_for(lambda: not s3.unfinished_uploads(bucket))
        assert s3.objects(bucket) == {}
        assert list(process.client().beta.files.list(limit=100)) == []
    finally:
        assert process.stop() == 0


def test_a_missing_bucket_makes_the_node_unready(tmp_path: Path, s3: S3) -> None:
    process = ServerProcess(
        "rocksdb", tmp_path / "data", new_key(), tmp_path / "server.log", args=s3_args(s3, "no-such-bucket")
    ).start()
    try:
        ready = httpx.get(process.url + "/readyz", timeout=10)
        assert ready.status_code == 503, ready.text
        with pytest.raises(anthropic.InternalServerError):
            process.client(max_retries=0).beta.files.upload(file=("x.txt", b"x", "text/plain"))
    finally:
        assert process.stop() == 0


def test_sessions_read_resources_and_skills_from_and_store_outputs_in_the_bucket(
    tmp_path: Path, s3: S3, mock: MockModel
) -> None:
    bucket = s3.bucket("agents-sessions")
    data_dir = tmp_path / "data"
    searchable(data_dir)
    process = ServerProcess(
        "rocksdb", data_dir, new_key(), tmp_path / "server.log", runner=True, args=s3_args(s3, bucket)
    ).start()
    try:
        client = process.client()
        h = Harness(client=client, server=None, mock=mock, vault=llm_vault(client, mock.url), token="")  # type: ignore[arg-type]
        content = os.urandom(6 * 1024 * 1024)
        upload = client.beta.files.upload(file=("in.bin", content, "application/octet-stream"))
        skill = client.beta.skills.create(files=skill_files())
        session = h.session(
            agent=h.agent(skills=[{"type": "custom", "skill_id": skill.id}]),
            resources=[{"type": "file", "file_id": upload.id, "mount_path": "/data/in.bin"}],
        )
        command = (
            "sha256sum /data/in.bin && cat /mnt/skills/csv-tools/scripts/count.py && "
            "cp /data/in.bin /mnt/session/outputs/copy.bin"
        )
        events = h.turn(session.id, bash(command), timeout=120)
        results = tool_results(events)
        assert len(results) == 1
        out = text(results[0])
        assert hashlib.sha256(content).hexdigest() in out
        assert SCRIPT.decode().strip() in out
        outputs = list(client.beta.files.list(scope_id=session.id, limit=100))
        assert [f.filename for f in outputs] == ["copy.bin"]
        assert s3.objects(bucket).get(outputs[0].id) == len(content)
        assert client.beta.files.download(outputs[0].id).read() == content
    finally:
        assert process.stop() == 0


def test_two_nodes_share_a_blob_dir(tmp_path: Path) -> None:
    """Two API nodes with data dirs of their own, one database and one `--blob-dir`: a file
    uploaded through one is downloaded and deleted through the other."""
    shared = tmp_path / "blobs"
    key = new_key()
    secret = os.urandom(32).hex()
    args = ["--blob-dir", str(shared), "--uploads-downloadable", "--secret-key", secret]
    cluster = PgCluster()
    a = b = None
    try:
        a = ServerProcess("postgres", tmp_path / "a", key, tmp_path / "a.log", args=args, cluster=cluster).start()
        b = ServerProcess("postgres", tmp_path / "b", key, tmp_path / "b.log", args=args, cluster=cluster).start()
        content = os.urandom(3 * 1024 * 1024 + 7)
        meta = a.client().beta.files.upload(file=("shared.bin", content, "application/octet-stream"))
        assert (shared / meta.id).stat().st_size == len(content)
        assert not (tmp_path / "a" / "files").exists()
        assert b.client().beta.files.download(meta.id).read() == content

        skill = b.client().beta.skills.create(files=skill_files())
        archive = a.client().beta.skills.versions.download(skill.latest_version_id, skill_id=skill.id)
        with zipfile.ZipFile(io.BytesIO(archive.read())) as z:
            assert z.read("csv-tools/scripts/count.py") == SCRIPT

        b.client().beta.files.delete(meta.id)
        assert not (shared / meta.id).exists()
        with pytest.raises(anthropic.NotFoundError):
            a.client().beta.files.download(meta.id)
    finally:
        for node in (b, a):
            if node is not None:
                assert node.stop() == 0
        cluster.stop()
