"""``requirements*.txt``: pinned (``==`` / ``===``) requirements only.

Everything pip accepts is understood; what does not name one exact version (ranges, URLs,
local paths, editables) is reported as skipped with its line, never guessed. ``-r`` includes
are followed inside the tree. ``# via`` annotations (pip-compile) tell direct from transitive;
without them ``direct`` is unknown. A file whose name says dev/test/lint/docs is dev scope.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator

from packaging.requirements import InvalidRequirement, Requirement

from ..model import Component, Dependency, Hash, IngestWarning, Scope, package_key
from .base import LockfileReport, lock_ref, merge_components, package_component, prefixed_hash
from .tree import FileTree

ECOSYSTEM = "PyPI"
_INCLUDE = re.compile(r"^(?:-r|--requirement)(?:\s*=\s*|\s+|(?=\S))(\S+)")
_CONSTRAINT = re.compile(r"^(?:-c|--constraint)\b")
_EDITABLE = re.compile(r"^(?:-e|--editable)\b")
_HASH_OPTION = re.compile(r"\s--hash[=\s]\s*(\S+)")
_TRAILING_OPTIONS = re.compile(r"\s-{1,2}[A-Za-z].*$")
_COMMENT = re.compile(r"(^|\s)#.*$")
_DEV_WORDS = {
    "dev",
    "develop",
    "development",
    "test",
    "tests",
    "testing",
    "lint",
    "docs",
    "doc",
    "ci",
}
_URLISH = re.compile(r"^(\.|/|[A-Za-z][A-Za-z0-9+.-]*://|git\+|hg\+|svn\+|bzr\+)")


def is_requirements_file(path: str) -> bool:
    name = posixpath.basename(path).lower()
    if not name.endswith(".txt"):
        return False
    return (
        "requirements" in name
        or posixpath.basename(posixpath.dirname(path)).lower() == "requirements"
    )


def scope_of(path: str) -> Scope:
    words = set(re.split(r"[-_./]", path.lower()))
    return "dev" if words & _DEV_WORDS else "required"


def logical_lines(text: str) -> Iterator[tuple[int, str, list[str]]]:
    """(first line number, requirement text without comment, the comments that go with it).

    Backslash continuations are joined. A comment at the end of a requirement line and the
    comment lines below it belong to that requirement: that is where pip-compile writes
    ``# via`` (annotation styles "line" and "split").
    """
    buffer, start = "", 0
    pending: tuple[int, str] | None = None
    comments: list[str] = []
    lines = text.splitlines()
    for number, raw in enumerate([*lines, ""], start=1):
        if buffer:
            line = buffer + " " + raw.strip()
        else:
            line, start = raw.strip(), number
        if line.endswith("\\") and number <= len(lines):
            buffer = line[:-1].strip()
            continue
        buffer = ""
        if line.startswith("#"):
            comments.append(line[1:].strip())
            continue
        match = _COMMENT.search(line)
        content = line[: match.start()].strip() if match else line
        if not content:
            continue
        if pending is not None:
            yield pending[0], pending[1], comments
        inline = match.group(0).strip()[1:].strip() if match else ""
        pending, comments = (start, content), ([inline] if inline else [])
    if pending is not None:
        yield pending[0], pending[1], comments


def _via(comments: list[str]) -> list[str] | None:
    """The ``via`` sources pip-compile recorded (``-r file`` or package names), if any."""
    for index, comment in enumerate(comments):
        if comment == "via" or comment.startswith("via "):
            sources = [comment[3:].strip()] if comment != "via" else []
            sources += [c for c in comments[index + 1 :] if c and not c.startswith("via")]
            return [part.strip() for s in sources for part in s.split(",") if part.strip()]
    return None


def _pinned_version(requirement: Requirement) -> str | None:
    for spec in requirement.specifier:
        if spec.operator in ("==", "===") and "*" not in spec.version:
            return spec.version
    return None


class _Reader:
    def __init__(self, tree: FileTree) -> None:
        self.tree = tree
        self.components: dict[str, Component] = {}
        self.warnings: list[IngestWarning] = []
        self.via_edges: list[tuple[str, str]] = []  # (parent package name, child ref)
        self.annotated = False
        self.seen: set[str] = set()

    def warn(self, code: str, detail: str, location: str) -> None:
        self.warnings.append(IngestWarning(code=code, detail=detail, location=location))

    def read_file(self, path: str, data: bytes) -> None:
        self.seen.add(path)
        text = data.decode("utf-8-sig", errors="replace")
        scope = scope_of(path)
        for number, line, comments in logical_lines(text):
            location = f"{path}:{number}"
            include = _INCLUDE.match(line)
            if include:
                self.include(path, include.group(1), location)
            elif _CONSTRAINT.match(line):
                continue  # constraints narrow versions; they install nothing
            elif _EDITABLE.match(line):
                self.warn(
                    "unpinned_requirement", f"editable install {line[:120]!r} skipped", location
                )
            elif line.startswith("-"):
                continue  # index and build options (-i, --extra-index-url, --pre, ...)
            else:
                self.requirement(line, comments, scope, location)

    def include(self, path: str, target: str, location: str) -> None:
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
        if joined.startswith("../") or joined == ".." or posixpath.isabs(target):
            self.warn(
                "include_outside_tree", f"-r {target} points outside the tree; skipped", location
            )
            return
        if joined in self.seen:
            return
        try:
            data = self.tree.read(joined)
        except KeyError:
            self.warn("include_missing", f"-r {target}: {joined} is not in the tree", location)
            return
        self.read_file(joined, data)

    def requirement(self, line: str, comments: list[str], scope: Scope, location: str) -> None:
        hashes = [h for h in (prefixed_hash(v) for v in _HASH_OPTION.findall(line)) if h]
        spec_text = _TRAILING_OPTIONS.sub("", _HASH_OPTION.sub("", line)).strip()
        if _URLISH.match(spec_text):
            self.warn(
                "unpinned_requirement", f"{spec_text[:120]!r} is a path or URL; skipped", location
            )
            return
        try:
            requirement = Requirement(spec_text)
        except InvalidRequirement as exc:
            self.warn("invalid_requirement", f"{spec_text[:120]!r}: {exc}", location)
            return
        version = _pinned_version(requirement) if requirement.url is None else None
        if version is None:
            self.warn(
                "unpinned_requirement",
                f"{spec_text[:120]!r} does not pin one version (== or ===); skipped",
                location,
            )
            return
        self.add(requirement.name, version, scope, hashes, _via(comments))

    def add(
        self, name: str, version: str, scope: Scope, hashes: list[Hash], via: list[str] | None
    ) -> None:
        direct: bool | None = None
        if via is not None:
            self.annotated = True
            parents = [v for v in via if not v.startswith(("-r ", "-c "))]
            direct = len(parents) < len(via) or not parents
            for parent in parents:
                self.via_edges.append((parent, lock_ref(ECOSYSTEM, name, version)))
        component = package_component(
            ECOSYSTEM, name, version, scope=scope, direct=direct, hashes=hashes
        )
        previous = self.components.get(component.ref)
        self.components[component.ref] = (
            merge_components(previous, component) if previous else component
        )


def read_requirements(path: str, data: bytes, tree: FileTree) -> LockfileReport:
    reader = _Reader(tree)
    reader.read_file(path, data)
    by_name = {package_key(ECOSYSTEM, c.name): c.ref for c in reader.components.values()}
    edges: dict[str, dict[str, None]] = {}
    for parent, child in reader.via_edges:
        parent_ref = by_name.get(package_key(ECOSYSTEM, parent.split("[")[0].strip()))
        if parent_ref is not None and parent_ref != child:
            edges.setdefault(parent_ref, {})[child] = None
    return LockfileReport(
        path=path,
        kind="requirements.txt",
        ecosystem=ECOSYSTEM,
        components=tuple(reader.components.values()),
        dependencies=tuple(Dependency(ref, tuple(children)) for ref, children in edges.items()),
        warnings=tuple(reader.warnings),
    )
