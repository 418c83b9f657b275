"""The checked-in JSON Schemas and AsyncAPI document are what the Structs generate, and the
AsyncAPI document is a structurally valid 3.0 document."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts.catalog import STREAM_NAME, catalog_entries, message_id, schema_file_name
from contracts.envelope import registry, subject_for
from contracts.generate import (
    ASYNCAPI_FILE,
    CONTRACTS_DIR,
    REGENERATE_HINT,
    generated_files,
    main,
    stale_files,
    write_files,
)
from shared.settings import Settings

COMPONENT_KEY = re.compile(r"^[a-zA-Z0-9.\-_]+$")


def test_checked_in_contracts_match_the_structs() -> None:
    stale = stale_files()
    assert not stale, (
        f"these generated files differ from the event Structs: "
        f"{', '.join('contracts/' + name for name in stale)}; {REGENERATE_HINT}"
    )


def test_generation_is_deterministic_and_stably_formatted() -> None:
    first, second = generated_files(), generated_files()
    assert first == second
    for name, content in first.items():
        assert content.endswith("\n") and not content.endswith("\n\n"), name
        assert "\r" not in content, name
        if name.endswith(".json"):
            parsed = json.loads(content)
            assert (
                content == json.dumps(parsed, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            )


def test_check_names_stale_missing_and_orphaned_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--root", str(tmp_path)]) == 0
    assert stale_files(tmp_path) == []
    assert main(["--check", "--root", str(tmp_path)]) == 0

    created = tmp_path / "schemas" / schema_file_name("project.created", 1)
    created.write_text(created.read_text().replace("A project was created.", "Edited by hand."))
    (tmp_path / "schemas" / schema_file_name("apikey.revoked", 1)).unlink()
    (tmp_path / "schemas" / "gone.event.v1.json").write_text("{}\n")
    capsys.readouterr()

    assert main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    for name in ("project.created.v1.json", "apikey.revoked.v1.json", "gone.event.v1.json"):
        assert f"contracts/schemas/{name}" in err
    assert "python -m contracts.generate" in err

    assert sorted(write_files(tmp_path)) == [
        "schemas/apikey.revoked.v1.json",
        "schemas/gone.event.v1.json",
        "schemas/project.created.v1.json",
    ]
    assert not (tmp_path / "schemas" / "gone.event.v1.json").exists()
    assert stale_files(tmp_path) == []


def test_the_module_runs_as_a_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "contracts.generate", "--check"],
        capture_output=True,
        text=True,
        check=False,
        cwd=CONTRACTS_DIR.parent,
    )
    assert done.returncode == 0, done.stderr


# ---- AsyncAPI 3.0 structure -------------------------------------------------------------------


@pytest.fixture(scope="module")
def asyncapi() -> dict[str, Any]:
    document = yaml.safe_load((CONTRACTS_DIR / ASYNCAPI_FILE).read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def _pointer(document: Any, pointer: str) -> Any:
    node = document
    for raw in pointer.lstrip("/").split("/") if pointer.strip("/") else []:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(part)]
        else:
            assert isinstance(node, dict) and part in node, f"unresolved pointer {pointer!r}"
            node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                assert isinstance(value, str)
                found.append(value)
            else:
                found.extend(_refs(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_refs(item))
    return found


def _resolve(ref: str, *, document: Any, base: Path) -> tuple[Any, Path]:
    """Resolve a $ref relative to ``base`` (a file): local pointers and relative files."""
    target, _, pointer = ref.partition("#")
    if target:
        path = (base.parent / target).resolve()
        assert path.is_file(), f"$ref {ref!r} names a missing file"
        document = json.loads(path.read_text(encoding="utf-8"))
        base = path
    return _pointer(document, pointer), base


def test_asyncapi_is_version_3_with_a_nats_server(asyncapi: dict[str, Any]) -> None:
    assert asyncapi["asyncapi"] == "3.0.0"
    assert asyncapi["info"]["title"] and asyncapi["info"]["version"]
    assert asyncapi["servers"]["nats"]["protocol"] == "nats"
    assert asyncapi["servers"]["nats"]["host"]
    assert STREAM_NAME == Settings().stream_name
    for section in ("channels", "operations"):
        assert all(COMPONENT_KEY.match(key) for key in asyncapi[section]), section
    for section, entries in asyncapi["components"].items():
        assert all(COMPONENT_KEY.match(key) for key in entries), section


def test_every_ref_resolves_including_inside_the_schemas(asyncapi: dict[str, Any]) -> None:
    base = CONTRACTS_DIR / ASYNCAPI_FILE
    pending = [(ref, asyncapi, base) for ref in _refs(asyncapi)]
    seen: set[tuple[str, Path]] = set()
    while pending:
        ref, document, where = pending.pop()
        if (ref, where) in seen:
            continue
        seen.add((ref, where))
        _, target_base = _resolve(ref, document=document, base=where)
        if target_base != where:  # a schema file: its own refs resolve inside it
            file_document = json.loads(target_base.read_text(encoding="utf-8"))
            pending.extend((inner, file_document, target_base) for inner in _refs(file_document))
    assert any(where.suffix == ".json" for _, where in seen)


def test_every_registered_event_has_a_channel_message_and_receive_operation(
    asyncapi: dict[str, Any],
) -> None:
    channels = asyncapi["channels"]
    operations = asyncapi["operations"]
    messages = asyncapi["components"]["messages"]
    for event_type, version in registry():
        subject = subject_for(event_type)
        channel = channels[subject]
        assert channel["address"] == subject
        mid = message_id(event_type, version)
        assert channel["messages"][mid] == {"$ref": f"#/components/messages/{mid}"}
        schema_ref = messages[mid]["payload"]["schema"]["$ref"]
        assert schema_ref == f"schemas/{schema_file_name(event_type, version)}"

        receiving = [
            op for op in operations.values() if op["channel"]["$ref"] == f"#/channels/{subject}"
        ]
        assert len(receiving) == 1
        assert receiving[0]["action"] == "receive"
        assert {"$ref": f"#/channels/{subject}/messages/{mid}"} in receiving[0]["messages"]

    assert set(channels) == {subject_for(t) for t, _ in registry()}
    assert set(messages) == {message_id(t, v) for t, v in registry()}


def test_operations_only_use_messages_of_their_own_channel(asyncapi: dict[str, Any]) -> None:
    for name, operation in asyncapi["operations"].items():
        channel_ref = operation["channel"]["$ref"]
        for message in operation["messages"]:
            assert message["$ref"].startswith(channel_ref + "/messages/"), name


def test_a_schema_file_describes_the_envelope_of_its_event() -> None:
    for entry in catalog_entries():
        path = CONTRACTS_DIR / "schemas" / schema_file_name(entry.type, entry.schema_version)
        schema = json.loads(path.read_text(encoding="utf-8"))
        assert schema["properties"]["type"]["const"] == entry.type
        assert schema["properties"]["schema_version"]["const"] == entry.schema_version
        assert schema["description"] == entry.description
