"""``go.mod``: ``require`` (single lines and blocks) with ``// indirect``, ``replace``
directives, and the Go toolchain itself as the ``stdlib`` module.

A replacement by another module version is what gets built, so the component is the
replacement; a replacement by a local directory is local code (skipped, with a warning).
The toolchain comes from ``toolchain goX.Y.Z`` or, failing that, the ``go`` line, as OSV's
``stdlib`` package with a plain semantic version (``1.21`` becomes ``1.21.0``).
"""

from __future__ import annotations

import re

from ..errors import LockfileError
from ..model import Component, IngestWarning
from .base import LockfileReport, merge_components, package_component
from .tree import FileTree

ECOSYSTEM = "Go"
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`|\S+')
_GO_VERSION = re.compile(r"(?:go)?(\d+)\.(\d+)(?:\.(\d+))?((?:rc|beta)\d+)?")


def _tokens(text: str) -> list[str]:
    return [t[1:-1] if t[:1] in ('"', "`") else t for t in _TOKEN.findall(text)]


def _lines(path: str, text: str) -> list[tuple[int, str, list[str], str]]:
    """(line, directive, arguments, comment) with blocks ``verb ( ... )`` expanded."""
    result: list[tuple[int, str, list[str], str]] = []
    block: str | None = None
    block_start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        code, _, comment = raw.partition("//")
        tokens = _tokens(code)
        if block is not None:
            if tokens == [")"]:
                block = None
            elif tokens:
                result.append((number, block, tokens, comment.strip()))
            continue
        if not tokens:
            continue
        if len(tokens) == 2 and tokens[1] == "(":
            block, block_start = tokens[0], number
            continue
        result.append((number, tokens[0], tokens[1:], comment.strip()))
    if block is not None:
        raise LockfileError(f"'{block} (' block is never closed", location=f"{path}:{block_start}")
    return result


def _stdlib_version(text: str) -> str | None:
    match = _GO_VERSION.fullmatch(text)
    if match is None:
        return None
    major, minor, patch, pre = match.groups()
    if pre:
        return f"{major}.{minor}.{patch or 0}-{pre}"
    return f"{major}.{minor}.{patch or 0}"


def read_go_mod(path: str, data: bytes, tree: FileTree) -> LockfileReport:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LockfileError(f"{path} is not valid UTF-8", location=path) from None
    entries = _lines(path, text)
    warnings: list[IngestWarning] = []
    requires: list[tuple[int, str, str, bool]] = []
    replacements: dict[tuple[str, str | None], tuple[str, str | None, int]] = {}
    go_line = toolchain = None
    for number, verb, args, comment in entries:
        location = f"{path}:{number}"
        if verb == "require":
            if len(args) != 2:
                raise LockfileError(
                    f"require needs 'module version', found {' '.join(args)!r}", location=location
                )
            indirect = comment == "indirect" or comment.startswith("indirect;")
            requires.append((number, args[0], args[1], indirect))
        elif verb == "replace":
            if "=>" not in args:
                raise LockfileError(
                    "replace needs 'old [version] => new [version]'", location=location
                )
            arrow = args.index("=>")
            old, new = args[:arrow], args[arrow + 1 :]
            if len(old) not in (1, 2) or len(new) not in (1, 2):
                raise LockfileError(f"malformed replace {' '.join(args)!r}", location=location)
            replacements[(old[0], old[1] if len(old) == 2 else None)] = (
                new[0],
                new[1] if len(new) == 2 else None,
                number,
            )
        elif verb == "go" and args:
            go_line = args[0]
        elif verb == "toolchain" and args:
            toolchain = args[0]
    components: dict[str, Component] = {}
    for _, module, version, indirect in requires:
        name, resolved = module, version
        replacement = replacements.get((module, version)) or replacements.get((module, None))
        if replacement is not None:
            new_path, new_version, replace_line = replacement
            if new_version is None:
                warnings.append(
                    IngestWarning(
                        code="replaced_by_local_path",
                        detail=f"{module} {version} is replaced by local directory {new_path}",
                        location=f"{path}:{replace_line}",
                    )
                )
                continue
            name, resolved = new_path, new_version
        component = package_component(
            ECOSYSTEM, name, resolved, scope="required", direct=not indirect
        )
        previous = components.get(component.ref)
        components[component.ref] = merge_components(previous, component) if previous else component
    stdlib = (
        _stdlib_version(toolchain) if toolchain else (_stdlib_version(go_line) if go_line else None)
    )
    if stdlib is not None:
        component = package_component(ECOSYSTEM, "stdlib", stdlib, scope="required", direct=None)
        components[component.ref] = component
    return LockfileReport(
        path=path,
        kind="go.mod",
        ecosystem=ECOSYSTEM,
        components=tuple(components.values()),
        warnings=tuple(warnings),
    )
