"""Lint cassette files for secrets that should have been scrubbed and for unsafe YAML tags.

The file is only *composed* (turned into YAML nodes with line numbers), never constructed, so a
hostile file can be linted safely. Findings:

- ``unsafe-tag``: a tag that could run code or is not a standard YAML type;
- ``bearer-token``, ``sk-key``, ``jwt``: a secret-looking value in any text, including inside
  ``!!binary`` bodies;
- ``secret-header`` / ``cookie``: an auth-like header or a cookie header that has a value;
- ``secret-query``: a secret-named query parameter (or a URI password) with a value;
- ``secret-field``: a secret-named JSON field with a value, in a body or an SSE ``data:`` line;
- ``not-yaml``: the file does not parse (its raw text is still searched for secret values).

A value equal to the scrub replacement (``<scrubbed>``) is never a finding.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from cassettes import safeyaml
from cassettes.scrub import DEFAULT_POLICY, SECRET_VALUE_PATTERNS, ScrubPolicy, json_documents
from providers.errors import CassetteFormatError

_BINARY = "tag:yaml.org,2002:binary"
CASSETTE_SUFFIXES = (".yaml", ".yml")
_LOOKS_LIKE = {"bearer-token": "a bearer token", "sk-key": "an sk- API key", "jwt": "a JWT"}


@dataclass(frozen=True, order=True)
class Finding:
    """One problem: where (file, 1-based line), what kind, and a message without the secret."""

    path: str
    line: int
    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}: {self.message}"


def lint_paths(
    paths: Iterable[str | os.PathLike[str]], policy: ScrubPolicy = DEFAULT_POLICY
) -> list[Finding]:
    """Lint files, and every ``.yaml``/``.yml`` file under the directories given."""
    findings: list[Finding] = []
    for path in map(Path, paths):
        files = (
            sorted(p for p in path.rglob("*") if p.suffix in CASSETTE_SUFFIXES)
            if path.is_dir()
            else [path]
        )
        for file in files:
            findings.extend(lint_file(file, policy))
    return findings


def lint_file(path: str | os.PathLike[str], policy: ScrubPolicy = DEFAULT_POLICY) -> list[Finding]:
    """Findings for one file, sorted by line."""
    return lint_bytes(Path(path).read_bytes(), os.fspath(path), policy)


def lint_bytes(
    data: bytes, path: str = "<string>", policy: ScrubPolicy = DEFAULT_POLICY
) -> list[Finding]:
    """Findings for cassette text, sorted by line."""
    linter = _Linter(path, policy)
    try:
        root = safeyaml.compose(data, path)
    except CassetteFormatError as exc:
        linter.add(1, "not-yaml", str(exc))
        linter.patterns(data, 1)
    else:
        if root is not None:
            for tag, line in safeyaml.unsafe_tags(root):
                linter.add(line, "unsafe-tag", f"YAML tag {tag} could run code when loaded")
            linter.walk(root, ())
    return sorted(set(linter.findings))


class _Linter:
    def __init__(self, path: str, policy: ScrubPolicy) -> None:
        self.path = path
        self.policy = policy
        self.findings: list[Finding] = []

    def add(self, line: int, kind: str, message: str) -> None:
        self.findings.append(Finding(self.path, line, kind, message))

    def walk(self, node: Node, keys: tuple[str, ...]) -> None:
        if isinstance(node, ScalarNode):
            self.scalar(node, keys)
        elif isinstance(node, SequenceNode):
            for item in node.value:
                self.walk(item, keys)
        elif isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                self.walk(key_node, keys)
                name = key_node.value if isinstance(key_node, ScalarNode) else ""
                if keys[-1:] == ("headers",):
                    self.header(name, value_node)
                self.walk(value_node, (*keys, name))

    def scalar(self, node: ScalarNode, keys: tuple[str, ...]) -> None:
        line = node.start_mark.line + 1
        data = _scalar_bytes(node)
        # Lines inside the value map to file lines only for text; a literal block starts one line
        # below its "|". Inside decoded !!binary, report the line the value starts on.
        binary = node.tag == _BINARY
        first = line + (node.style in ("|", ">") and not binary)
        self.patterns(data, first, count_lines=not binary)
        if keys[-1:] == ("uri",):
            self.uri(node.value, line)
        if keys[-1:] == ("string",) or keys[-2:] == ("request", "body"):
            self.body(data, first, count_lines=not binary)

    def patterns(self, data: bytes, first: int, *, count_lines: bool = True) -> None:
        for kind, pattern in SECRET_VALUE_PATTERNS:
            for match in pattern.finditer(data):
                if match.group("secret") != self.policy.replacement.encode():
                    where = first + (data.count(b"\n", 0, match.start()) if count_lines else 0)
                    self.add(where, kind, f"looks like {_LOOKS_LIKE.get(kind, kind)}")

    def header(self, name: str, node: Node) -> None:
        if not self.policy.is_secret_name(name):
            return
        values = node.value if isinstance(node, SequenceNode) else [node]
        for value in values:
            if isinstance(value, ScalarNode) and value.value not in ("", self.policy.replacement):
                kind = "cookie" if name.lower() in ("cookie", "set-cookie") else "secret-header"
                self.add(value.start_mark.line + 1, kind, f"header {name!r} has a value")

    def uri(self, uri: str, line: int) -> None:
        parts = urlsplit(uri)
        if parts.password and unquote(parts.password) != self.policy.replacement:
            self.add(line, "secret-query", "the URI holds a password")
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if value not in ("", self.policy.replacement) and self.policy.is_secret_name(name):
                self.add(line, "secret-query", f"query parameter {name!r} has a value")

    def body(self, data: bytes, first: int, *, count_lines: bool) -> None:
        for start, _, document in json_documents(data):
            where = first + (data.count(b"\n", 0, start) if count_lines else 0)
            for field in _secret_fields(document, self.policy, secret=False):
                self.add(where, "secret-field", f"JSON field {field!r} has a value")


def _secret_fields(
    value: Any, policy: ScrubPolicy, *, secret: bool, name: str = ""
) -> Iterator[str]:
    if isinstance(value, str):
        if secret and value and value != policy.replacement:
            yield name
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _secret_fields(
                item, policy, secret=secret or policy.is_secret_name(key), name=key
            )
    elif isinstance(value, list):
        for item in value:
            yield from _secret_fields(item, policy, secret=secret, name=name)


def _scalar_bytes(node: ScalarNode) -> bytes:
    if node.tag == _BINARY:
        try:
            return base64.decodebytes(node.value.encode("ascii"))
        except (UnicodeEncodeError, binascii.Error):
            return b""
    text: str = node.value
    return text.encode("utf-8", "surrogatepass")
