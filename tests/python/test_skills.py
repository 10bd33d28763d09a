"""Skills (API §13) through `client.beta.skills`: multipart `files[]` uploads under one top-level
directory with a `SKILL.md`, versions, the zip content download, the path and frontmatter checks,
and agents' skill references."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import anthropic
import pytest

from conftest import Server, ServerProcess, new_key, unique
from harness_support import (  # noqa: F401  (fixtures)
    Harness,
    MockModel,
    bash,
    harness,
    harness_server,
    llm_vault,
    mock,
    searchable,
    text,
    tool_results,
    types,
)
from test_engine_codex import codex_agent, codex_server  # noqa: F401  (fixture)
from test_engine_codex import responses as codex_responses
from test_harness_engines import openai_harness
from test_engine_claude import MODEL as CLAUDE_MODEL
from test_engine_claude import TURN as CLAUDE_TURN
from test_engine_claude import claude, h, runtimes  # noqa: F401  (fixtures)

SKILL_MD = b"---\nname: csv-tools\ndescription: Summarise CSV files with the bundled script\n---\n\n# CSV tools\n"
SCRIPT = b"import sys\nprint(sum(1 for _ in open(sys.argv[1])))\n"


def skill_files(md: bytes = SKILL_MD, top: str = "csv-tools") -> list[Any]:
    return [(f"{top}/SKILL.md", md, "text/markdown"), (f"{top}/scripts/count.py", SCRIPT, "text/x-python")]


def test_create_retrieve_list_versions_and_download(client: anthropic.Anthropic) -> None:
    skill = client.beta.skills.create(files=skill_files(), display_name="CSV tools")
    assert skill.type == "skill" and skill.id.startswith("skill_")
    assert skill.display_name == "CSV tools"
    assert skill.source.type == "custom"
    first = skill.latest_version_id
    assert first
    got = client.beta.skills.retrieve(skill.id)
    assert got.id == skill.id and got.latest_version_id == first
    assert skill.id in [s.id for s in client.beta.skills.list(limit=1000)]
    assert client.beta.skills.list(source="anthropic").data == []

    version = client.beta.skills.versions.retrieve(first, skill_id=skill.id)
    assert version.type == "skill_version" and version.skill_id == skill.id
    assert version.name == "csv-tools"
    assert version.description == "Summarise CSV files with the bundled script"

    newer_md = SKILL_MD.replace(b"bundled script", b"bundled script, v2")
    second = client.beta.skills.versions.create(skill.id, files=skill_files(newer_md))
    assert second.id != first and second.name == "csv-tools"
    assert client.beta.skills.retrieve(skill.id).latest_version_id == second.id
    assert client.beta.skills.versions.retrieve("latest", skill_id=skill.id).id == second.id
    listed = client.beta.skills.versions.list(skill.id)
    assert [v.id for v in listed.data] == [second.id, first]
    page = client.beta.skills.versions.list(skill.id, limit=1)
    assert [v.id for v in page.data] == [second.id] and page.next_page
    assert [v.id for v in client.beta.skills.versions.list(skill.id, limit=1, page=page.next_page).data] == [first]

    archive = client.beta.skills.versions.download(second.id, skill_id=skill.id)
    with zipfile.ZipFile(io.BytesIO(archive.read())) as z:
        assert z.testzip() is None
        assert sorted(z.namelist()) == ["csv-tools/SKILL.md", "csv-tools/scripts/count.py"]
        assert z.read("csv-tools/SKILL.md") == newer_md
        assert z.read("csv-tools/scripts/count.py") == SCRIPT

    # A new version must keep the skill's name.
    other = SKILL_MD.replace(b"name: csv-tools", b"name: other-tools")
    with pytest.raises(anthropic.BadRequestError):
        client.beta.skills.versions.create(skill.id, files=skill_files(other))

    deleted = client.beta.skills.versions.delete(second.id, skill_id=skill.id)
    assert deleted.id == second.id and deleted.type == "skill_version_deleted"
    assert client.beta.skills.retrieve(skill.id).latest_version_id == first
    with pytest.raises(anthropic.NotFoundError):
        client.beta.skills.versions.retrieve(second.id, skill_id=skill.id)
    # The last version stays: delete the skill instead.
    with pytest.raises(anthropic.BadRequestError):
        client.beta.skills.versions.delete(first, skill_id=skill.id)
    gone = client.beta.skills.delete(skill.id)
    assert gone.id == skill.id and gone.type == "skill_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.beta.skills.retrieve(skill.id)


def test_display_name_defaults_to_the_frontmatter_name(client: anthropic.Anthropic) -> None:
    skill = client.beta.skills.create(files=skill_files())
    assert skill.display_name == "csv-tools"


@pytest.mark.parametrize(
    "files",
    [
        [("../csv-tools/SKILL.md", SKILL_MD, "text/markdown")],
        [("csv-tools/SKILL.md", SKILL_MD, "text/markdown"), ("csv-tools/../../etc/passwd", b"x", "text/plain")],
        [("/abs/SKILL.md", SKILL_MD, "text/markdown")],
        [("csv-tools/SKILL.md", SKILL_MD, "text/markdown"), ("other/notes.md", b"x", "text/plain")],
        [("csv-tools/SKILL.md", SKILL_MD, "text/markdown"), ("csv-tools/SKILL.md", SKILL_MD, "text/markdown")],
        [("SKILL.md", SKILL_MD, "text/markdown")],
    ],
    ids=["dotdot", "zip-slip", "absolute", "two-top-dirs", "duplicate", "no-top-dir"],
)
def test_bad_paths_are_400(client: anthropic.Anthropic, files: list[Any]) -> None:
    with pytest.raises(anthropic.BadRequestError) as err:
        client.beta.skills.create(files=files)
    assert err.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


def test_skill_md_is_required_and_checked(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as err:
        client.beta.skills.create(files=[("csv-tools/README.md", b"# hi\n", "text/markdown")])
    assert "SKILL.md" in err.value.message
    for md in (
        b"# no frontmatter\n",
        b"---\nname: Bad Name\ndescription: x\n---\n",
        b"---\nname: ok-name\n---\n",
    ):
        with pytest.raises(anthropic.BadRequestError):
            client.beta.skills.create(files=[("csv-tools/SKILL.md", md, "text/markdown")])


def test_size_and_count_limits(client: anthropic.Anthropic) -> None:
    big = [("csv-tools/SKILL.md", SKILL_MD, "text/markdown"), ("csv-tools/big.bin", b"x" * (8 * 1024 * 1024), "b/b")]
    with pytest.raises(anthropic.APIStatusError) as err:
        client.beta.skills.create(files=big)
    assert err.value.status_code == 413
    many = [("csv-tools/SKILL.md", SKILL_MD, "text/markdown")]
    many += [(f"csv-tools/f{i}.txt", b"x", "text/plain") for i in range(500)]
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.beta.skills.create(files=many)
    assert "at most 500 files" in bad.value.message
    # Exactly at the limits is fine.
    fits = [("csv-tools/SKILL.md", SKILL_MD, "text/markdown")]
    fits.append(("csv-tools/big.bin", b"x" * (8 * 1024 * 1024 - len(SKILL_MD)), "b/b"))
    assert client.beta.skills.create(files=fits).id


def test_unknown_skill_is_404(client: anthropic.Anthropic) -> None:
    missing = "skill_01doesnotexist0000000000"
    for call in (
        lambda: client.beta.skills.retrieve(missing),
        lambda: client.beta.skills.delete(missing),
        lambda: client.beta.skills.versions.list(missing),
        lambda: client.beta.skills.versions.retrieve("latest", skill_id=missing),
    ):
        with pytest.raises(anthropic.NotFoundError):
            call()


def test_other_workspaces_do_not_see_skills(server: Server, client: anthropic.Anthropic) -> None:
    # Only the durable servers of the suite have a second workspace (`tenant-b`).
    if server.other_key is None:
        return
    assert server.other_key
    skill = client.beta.skills.create(files=skill_files())
    other = server.client(server.other_key)
    with pytest.raises(anthropic.NotFoundError):
        other.beta.skills.retrieve(skill.id)
    assert skill.id not in [s.id for s in other.beta.skills.list(limit=1000)]


def test_agents_reference_existing_skills(client: anthropic.Anthropic, make_agent: Any) -> None:
    skill = client.beta.skills.create(files=skill_files())
    agent = make_agent(skills=[{"type": "custom", "skill_id": skill.id}])
    assert agent.skills[0].skill_id == skill.id
    pinned = make_agent(skills=[{"type": "custom", "skill_id": skill.id, "version": skill.latest_version_id}])
    assert pinned.skills[0].version == skill.latest_version_id
    with pytest.raises(anthropic.BadRequestError):
        make_agent(skills=[{"type": "custom", "skill_id": "skill_01doesnotexist0000000000"}])
    with pytest.raises(anthropic.BadRequestError):
        make_agent(skills=[{"type": "custom", "skill_id": skill.id, "version": "123"}])
    with pytest.raises(anthropic.BadRequestError) as err:
        make_agent(skills=[{"type": "anthropic", "skill_id": "xlsx"}])
    assert "anthropic-skills-dir" in err.value.message
    with pytest.raises(anthropic.BadRequestError):
        client.beta.agents.update(agent.id, version=agent.version, skills=[{"type": "anthropic", "skill_id": "pdf"}])
    # A session's overrides are checked the same way.
    env = client.beta.environments.create(name=f"env-{skill.id[-8:]}")
    missing = {"type": "custom", "skill_id": "skill_01doesnotexist0000000000"}
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.create(
            agent={"type": "agent_with_overrides", "id": agent.id, "skills": [missing]}, environment_id=env.id
        )
    session = client.beta.sessions.create(
        agent={"type": "agent_with_overrides", "id": agent.id, "skills": [{"type": "custom", "skill_id": skill.id}]},
        environment_id=env.id,
    )
    assert session.agent.skills[0].skill_id == skill.id


# ---------------------------------------------------------------------------------------------
# Skills in a session: materialized read-only in the sandbox, named in the native engine's prompt.


def test_session_sees_the_latest_skill_version_read_only(harness: Harness) -> None:
    h = harness
    skill = h.client.beta.skills.create(files=skill_files())
    v2_md = SKILL_MD.replace(b"bundled script", b"bundled counting script")
    v2 = h.client.beta.skills.versions.create(
        skill.id, files=[*skill_files(v2_md), ("csv-tools/data/sample.csv", b"a,b\n1,2\n", "text/csv")]
    )
    session = h.session(agent=h.agent(skills=[{"type": "custom", "skill_id": skill.id}]))
    listing = bash(
        "cd /mnt/skills/csv-tools && find . -type f | sort && cat SKILL.md && "
        "python3 scripts/count.py data/sample.csv; "
        "touch /mnt/skills/csv-tools/new 2>/dev/null && echo writable || echo read-only; "
        "test -f /mnt/session/claude-plugin/skills/csv-tools/SKILL.md && echo in-the-claude-plugin"
    )
    events = h.turn(session.id, listing, timeout=120)
    results = tool_results(events)
    assert len(results) == 1, types(events)
    out = text(results[0])
    assert not results[0].is_error, out
    assert "./SKILL.md\n./data/sample.csv\n./scripts/count.py\n" in out
    assert "bundled counting script" in out  # the latest version (v2)
    assert "\n2\n" in out  # the skill's script ran on its data
    assert "read-only" in out and "writable" not in out.replace("read-only", "")
    assert "in-the-claude-plugin" in out

    system = json.dumps(h.model_requests()[0]["body"].get("system"))
    assert "csv-tools" in system
    assert "bundled counting script" in system
    assert "/mnt/skills/csv-tools/SKILL.md" in system
    assert v2.id  # pinned versions resolve too:

    pinned = h.session(
        agent=h.agent(skills=[{"type": "custom", "skill_id": skill.id, "version": skill.latest_version_id}])
    )
    first = h.turn(pinned.id, bash("cat /mnt/skills/csv-tools/SKILL.md; ls /mnt/skills/csv-tools"), timeout=120)
    out = text(tool_results(first)[0])
    assert "bundled script" in out and "counting" not in out and "data" not in out


def test_openai_agents_engine_names_the_skill_too(harness: Harness) -> None:
    h = openai_harness(harness)
    skill = h.client.beta.skills.create(files=skill_files())
    session = h.session(agent=h.agent(skills=[{"type": "custom", "skill_id": skill.id}]))
    events = h.turn(session.id, bash("head -n 3 /mnt/skills/csv-tools/SKILL.md"), timeout=120)
    assert "name: csv-tools" in text(tool_results(events)[0])
    body = json.dumps(h.model_requests()[0]["body"])
    assert "csv-tools: Summarise CSV files with the bundled script (/mnt/skills/csv-tools/SKILL.md)" in body


def test_two_skills_with_one_name_mount_the_first(harness: Harness) -> None:
    h = harness
    first = h.client.beta.skills.create(files=skill_files())
    second = h.client.beta.skills.create(files=skill_files(SKILL_MD.replace(b"bundled script", b"other copy")))
    skills = [{"type": "custom", "skill_id": first.id}, {"type": "custom", "skill_id": second.id}]
    session = h.session(agent=h.agent(skills=skills))
    events = h.turn(session.id, bash("cat /mnt/skills/csv-tools/SKILL.md"), timeout=120)
    errors = [e for e in events if e.type == "session.error"]
    assert len(errors) == 1 and second.id in errors[0].error.message, types(events)
    assert "bundled script" in text(tool_results(events)[0])


def test_a_deleted_skill_is_a_session_error_and_the_session_goes_on(harness: Harness) -> None:
    h = harness
    skill = h.client.beta.skills.create(files=skill_files())
    session = h.session(agent=h.agent(skills=[{"type": "custom", "skill_id": skill.id}]))
    h.client.beta.skills.delete(skill.id)
    events = h.turn(session.id, bash("ls /mnt/skills 2>&1; echo done"), timeout=120)
    errors = [e for e in events if e.type == "session.error"]
    assert errors and skill.id in errors[0].error.message, types(events)
    assert "done" in text(tool_results(events)[0])


def test_claude_code_lists_the_skills(h: Harness) -> None:
    """The `claude` engine loads the skills as a plugin (`--plugin-dir`): Claude Code's own
    request to the model lists them for its `Skill` tool."""
    skill = h.client.beta.skills.create(files=skill_files())
    agent = h.agent(
        model=CLAUDE_MODEL,
        tools=[{"type": "agent_toolset_20260401"}],
        skills=[{"type": "custom", "skill_id": skill.id}],
    )
    session = h.session(agent=agent)
    events = h.turn(session.id, "[[mock:text hi]]", timeout=CLAUDE_TURN)
    assert types(events)[-1] == "session.status_idle", types(events)
    body = h.model_requests()[-1]["body"]
    assert "Skill" in [t.get("name") for t in body.get("tools", [])]
    assert "managed-agents:csv-tools: Summarise CSV files with the bundled script" in json.dumps(body)


def test_operator_anthropic_skills_dir(tmp_path: Path, mock: MockModel) -> None:
    """`serve --anthropic-skills-dir DIR`: agents may reference `{type: "anthropic"}` skills that
    DIR holds (`DIR/<id>/SKILL.md`); they are bound read-only and named like custom ones."""
    skills_dir = tmp_path / "anthropic-skills"
    xlsx = skills_dir / "xlsx"
    xlsx.mkdir(parents=True)
    (xlsx / "SKILL.md").write_bytes(b"---\nname: xlsx\ndescription: Work with spreadsheets offline\n---\n# xlsx\n")
    for path in (skills_dir, xlsx):
        path.chmod(0o755)
    (xlsx / "SKILL.md").chmod(0o644)
    base = tmp_path / "server"
    searchable(base)
    key = new_key()
    process = ServerProcess(
        "memory", base / "data", key, base / "server.log", runner=True, args=["--anthropic-skills-dir", str(skills_dir)]
    ).start()
    try:
        client = process.client()
        token = "sk-mock-" + unique("secret")
        h = Harness(client=client, server=None, mock=mock, vault=llm_vault(client, mock.url, token), token=token)  # type: ignore[arg-type]
        with pytest.raises(anthropic.BadRequestError):
            h.agent(skills=[{"type": "anthropic", "skill_id": "pptx"}])
        with pytest.raises(anthropic.BadRequestError):
            h.agent(skills=[{"type": "anthropic", "skill_id": "../xlsx"}])
        agent = h.agent(skills=[{"type": "anthropic", "skill_id": "xlsx"}])
        assert agent.skills[0].type == "anthropic"
        session = h.session(agent=agent)
        events = h.turn(session.id, bash("cat /mnt/skills/xlsx/SKILL.md"), timeout=120)
        assert "Work with spreadsheets offline" in text(tool_results(events)[0])
        system = json.dumps(h.model_requests()[0]["body"].get("system"))
        assert "xlsx: Work with spreadsheets offline (/mnt/skills/xlsx/SKILL.md)" in system
    finally:
        assert process.stop() == 0


@pytest.fixture
def codex_h(codex_server: Any, mock: MockModel) -> Harness:
    return codex_server.harness(mock)


def test_codex_lists_the_skills(codex_h: Harness) -> None:
    """Codex discovers skills under `$CODEX_HOME/skills` (`/workspace/.codex/skills`), where
    they are bound read-only too: its request lists them with their SKILL.md."""
    h = codex_h
    skill = h.client.beta.skills.create(files=skill_files())
    session = h.session(agent=codex_agent(h, skills=[{"type": "custom", "skill_id": skill.id}]))
    events = h.turn(session.id, "[[mock:text hi]]", timeout=120)
    assert types(events)[-1] == "session.status_idle", types(events)
    body = json.dumps(codex_responses(h)[-1]["body"])
    assert "- csv-tools: Summarise CSV files with the bundled script (file: " in body
