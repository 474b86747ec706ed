"""Lint cassette files for secrets that should have been scrubbed and for unsafe YAML tags.

The file is only *composed* (turned into YAML nodes with line numbers), never constructed, so a
hostile file can be linted safely. Findings:

- ``unsafe-tag``: a tag that could run code or is not a standard YAML type;
- ``bearer-token``, ``sk-key``, ``jwt``: a secret-looking value in any text, including inside
  ``!!binary`` bodies;
- ``secret-header`` / ``cookie``: an auth-like header or a cookie header that has a value;
- ``secret-query``: a secret-named query parameter (or a URI password) with a value;
- ``secret-field``: a secret-named JSON field with a value, in a body or an SSE ``data:`` line;
- ``not-yaml``: the file does not parse (its raw text is still searched for secret values);
- ``not-cassette``: the file parses but Tapedeck would refuse to load it; the message is the
  loader's own (an empty file, a bad field, nesting past the limit, an alias bomb, ...), on the
  line of the interaction or node it names.

A value equal to the scrub replacement (``<scrubbed>``) is never a finding.

A hostile file is linted in bounded time and never raises: the walk is iterative, so deep nesting
cannot exhaust the stack, and it visits a node shared through YAML aliases once per place that
matters to the checks (a handful), not once per path to it, so an alias bomb stays small.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from cassettes import safeyaml, yamlio
from cassettes.scrub import DEFAULT_POLICY, SECRET_VALUE_PATTERNS, ScrubPolicy, json_documents
from providers.errors import CassetteFormatError

_BINARY = "tag:yaml.org,2002:binary"
CASSETTE_SUFFIXES = (".yaml", ".yml")
_LOOKS_LIKE = {"bearer-token": "a bearer token", "sk-key": "an sk- API key", "jwt": "a JWT"}
#: The mapping keys the checks look at (the last two above a node); any other key is "".
_KEYS_THAT_MATTER = frozenset({"uri", "string", "headers", "request", "body"})


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
        for file in cassettes_under(path) if path.is_dir() else [path]:
            findings.extend(lint_file(file, policy))
    return findings


def cassettes_under(directory: Path) -> list[Path]:
    """Every ``.yaml``/``.yml`` entry under ``directory``, sorted; directories are searched, not
    listed, even when their name ends in ``.yaml``."""
    return sorted(
        p for p in directory.rglob("*") if p.suffix in CASSETTE_SUFFIXES and not p.is_dir()
    )


def lint_file(path: str | os.PathLike[str], policy: ScrubPolicy = DEFAULT_POLICY) -> list[Finding]:
    """Findings for one file, sorted by line. OSError if it is not a regular file or cannot be
    read."""
    return lint_bytes(_read_regular_file(path), os.fspath(path), policy)


def _read_regular_file(path: str | os.PathLike[str]) -> bytes:
    # Without O_NONBLOCK, opening a FIFO for reading waits for a writer, forever.
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(descriptor, "rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            raise OSError(0, "not a regular file", os.fspath(path))
        return stream.read()


def lint_bytes(
    data: bytes, path: str = "<string>", policy: ScrubPolicy = DEFAULT_POLICY
) -> list[Finding]:
    """Findings for cassette text, sorted by line."""
    linter = _Linter(path, policy)
    try:
        root = safeyaml.compose(data, path)
    except safeyaml.NestedTooDeeplyError as exc:
        linter.not_a_cassette(exc, None)
        linter.patterns(data, 1)
    except CassetteFormatError as exc:
        linter.add(1, "not-yaml", str(exc))
        linter.patterns(data, 1)
    else:
        unsafe = safeyaml.unsafe_tags(root) if root is not None else []
        for tag, line in unsafe:
            linter.add(line, "unsafe-tag", f"YAML tag {tag} could run code when loaded")
        if root is not None:
            linter.walk(root)
        if not unsafe:  # a file with an unsafe tag is refused for that, already reported
            try:
                yamlio.cassette_from_nodes(root, path)
            except CassetteFormatError as exc:
                linter.not_a_cassette(exc, root)
    return sorted(set(linter.findings))


class _Linter:
    def __init__(self, path: str, policy: ScrubPolicy) -> None:
        self.path = path
        self.policy = policy
        self.findings: list[Finding] = []

    def add(self, line: int, kind: str, message: str) -> None:
        self.findings.append(Finding(self.path, line, kind, message))

    def not_a_cassette(self, error: CassetteFormatError, root: Node | None) -> None:
        """The loader's refusal as a finding, on the line it names (or its interaction's)."""
        message = str(error)
        if message.startswith(self.path):
            message = message[len(self.path) :].lstrip(",:").lstrip()
        line = 1
        if match := re.match(r"line (\d+): ", message):
            line, message = int(match[1]), message[match.end() :]
        elif match := re.match(r"interaction (\d+): ", message):
            line = _interaction_line(root, int(match[1]))
        self.add(line, "not-cassette", message)

    def walk(self, root: Node) -> None:
        # Iterative, so no nesting exhausts the stack. What a check needs to know about a node's
        # place is the last two mapping keys above it, and only whether each is one of a few
        # names: a node shared through aliases is visited once per such place (a handful at
        # most), never once per path to it, which an alias bomb multiplies beyond counting.
        visited: set[tuple[int, str, str]] = set()
        stack: list[tuple[Node, str, str]] = [(root, "", "")]
        while stack:
            node, outer, key = stack.pop()
            place = (id(node), outer, key)
            if place in visited:
                continue
            visited.add(place)
            if isinstance(node, ScalarNode):
                self.scalar(node, outer, key)
            elif isinstance(node, SequenceNode):
                stack.extend((item, outer, key) for item in node.value)
            elif isinstance(node, MappingNode):
                for key_node, value_node in node.value:
                    stack.append((key_node, outer, key))
                    name = key_node.value if isinstance(key_node, ScalarNode) else ""
                    if key == "headers":
                        self.header(name, value_node)
                    stack.append((value_node, key, name if name in _KEYS_THAT_MATTER else ""))

    def scalar(self, node: ScalarNode, outer: str, key: str) -> None:
        line = node.start_mark.line + 1
        data = _scalar_bytes(node)
        # Lines inside the value map to file lines only for text; a literal block starts one line
        # below its "|". Inside decoded !!binary, report the line the value starts on.
        binary = node.tag == _BINARY
        first = line + (node.style in ("|", ">") and not binary)
        self.patterns(data, first, count_lines=not binary)
        if key == "uri":
            self.uri(node.value, line)
        if key == "string" or (outer, key) == ("request", "body"):
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
        try:
            parts = urlsplit(uri)
        except ValueError:  # not a URL: the check of the cassette's shape reports it
            return
        if parts.password and unquote(parts.password) != self.policy.replacement:
            self.add(line, "secret-query", "the URI holds a password")
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if value not in ("", self.policy.replacement) and self.policy.is_secret_name(name):
                self.add(line, "secret-query", f"query parameter {name!r} has a value")

    def body(self, data: bytes, first: int, *, count_lines: bool) -> None:
        for start, _, document in json_documents(data):
            where = first + (data.count(b"\n", 0, start) if count_lines else 0)
            for field in _secret_fields(document, self.policy):
                self.add(where, "secret-field", f"JSON field {field!r} has a value")


def _secret_fields(value: Any, policy: ScrubPolicy) -> Iterator[str]:
    """Names of secret-named fields (or fields inside one) holding a non-empty string."""
    # (value, under a secret name?, the name) with an explicit stack: JSON nests as deep as the
    # parser allows, deeper than a recursive walk started further down the stack could go.
    stack: list[tuple[Any, bool, str]] = [(value, False, "")]
    while stack:
        item, secret, name = stack.pop()
        if isinstance(item, str):
            if secret and item and item != policy.replacement:
                yield name
        elif isinstance(item, dict):
            stack.extend(
                (inner, secret or policy.is_secret_name(key), key)
                for key, inner in reversed(item.items())
            )
        elif isinstance(item, list):
            stack.extend((inner, secret, name) for inner in reversed(item))


def _interaction_line(root: Node | None, number: int) -> int:
    """The line where interaction ``number`` starts, or 1 when the shape does not say."""
    if isinstance(root, MappingNode):
        for key_node, value_node in root.value:
            if (
                key_node.value == "interactions"
                and isinstance(value_node, SequenceNode)
                and number < len(value_node.value)
            ):
                return int(value_node.value[number].start_mark.line) + 1
    return 1


def _scalar_bytes(node: ScalarNode) -> bytes:
    if node.tag == _BINARY:
        try:
            return base64.decodebytes(node.value.encode("ascii"))
        except (UnicodeEncodeError, binascii.Error):
            return b""
    text: str = node.value
    return text.encode("utf-8", "surrogatepass")
