"""Safe, fast YAML for cassettes: compose with libyaml, refuse unsafe tags, build plain data.

Loading never constructs anything but plain data. The document is composed into nodes by
libyaml (``CSafeLoader``'s parser; the pure-Python one where libyaml is missing), every tag is
checked against the standard YAML types before anything is built, and the nodes are turned into
Python values by a small walker that is several times faster than PyYAML's generic constructor,
with the cyclic garbage collector paused meanwhile. That is what keeps loading cheaper than
vcrpy's loader on the same file: the parse is the same C code, the construction is not.

A hostile file gets one :class:`CassetteFormatError` line, never a crash or a hang:

- nesting deeper than :data:`MAX_DEPTH` is refused *while* composing, before libyaml's composer
  (which recurses in C, with no limit of its own) can overflow the C stack;
- YAML aliases are shared, never copied, and a document whose aliases form a cycle or would
  expand it far beyond its written size (an alias bomb) is refused: a cassette is saved without
  anchors, so such a document could never be written back;
- merge keys (``<<``) are resolved here, on built mappings, instead of by PyYAML's
  ``flatten_mapping``, which copies merged pairs and takes exponential time on nested merges;
- ``!!binary`` must be strict base64 (``base64.decodebytes`` silently drops what is not).
"""

from __future__ import annotations

import binascii
import gc
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from providers.errors import CassetteFormatError, UnsafeCassetteError

_T = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = _T + "str", _T + "int", _T + "float", _T + "bool", _T + "null"
_BINARY, _MAP, _SEQ, _MERGE, _VALUE = (
    _T + "binary",
    _T + "map",
    _T + "seq",
    _T + "merge",
    _T + "value",
)
#: Tags that only ever build plain data. Everything else (``!!python/*``, local ``!tags``) is
#: refused: Tapedeck itself writes no tag but ``!!binary``.
SAFE_TAGS = frozenset(
    {_STR, _INT, _FLOAT, _BOOL, _NULL, _BINARY, _MAP, _SEQ, _MERGE, _VALUE}
    | {_T + name for name in ("timestamp", "set", "omap", "pairs")}
)

# A tag token starts with "!" right after a blank, a line break, a flow indicator or the start
# of the stream. Any such "!" other than "!!binary" sends the document through the full tag check
# *before* construction; the construction walk checks every tag again, so a miss here could only
# make the error come later, never let an unsafe tag through. Bytes \x85, \xa8, \xa9 and \xbf end
# the UTF-8 line breaks NEL, LS, PS and the BOM.
_TAG_PRECEDERS = frozenset(b" \t\r\n\x00\x85\xa8\xa9\xbf[]{},:?-")
_BINARY_TAG = re.compile(rb"!!binary[ \t\r\n,\]}]")


def _may_hold_tags(data: bytes) -> bool:
    # bytes.find is far cheaper than a regex with a look-behind over megabytes of bodies.
    position = data.find(b"!")
    while position != -1:
        if (position == 0 or data[position - 1] in _TAG_PRECEDERS) and not _BINARY_TAG.match(
            data, position
        ):
            return True
        position = data.find(b"!", position + 1)
    return False


_IMPLICIT = Resolver.yaml_implicit_resolvers
_WILDCARD = tuple(_IMPLICIT.get(None, ()))
_RESOLVERS = {
    first: (*found, *_WILDCARD) for first, found in _IMPLICIT.items() if first is not None
}


def _resolve(self: Any, kind: type[Node], value: str, implicit: tuple[bool, bool]) -> str:
    # Resolver.resolve without path resolvers (never used here) and without building a new list
    # on every call: it runs once per node, so it is a large share of the parse time.
    if kind is ScalarNode:
        if implicit[0]:
            for tag, regexp in _RESOLVERS.get(value[:1], _WILDCARD):
                if regexp.match(value):
                    resolved: str = tag
                    return resolved
        return _STR
    return _SEQ if kind is SequenceNode else _MAP


#: The deepest a cassette's YAML may nest, counting every node from the document's root to the
#: deepest leaf. A cassette needs about 7 levels. The limit keeps far below the depth at which
#: libyaml's composer overflows an 8 MiB C stack (about 25,000 levels) or a 2 MiB thread stack,
#: and lets :func:`construct`, which spends two units of Python's recursion limit (1,000) per
#: level, build whatever composed even when it is called deep in a stack.
MAX_DEPTH = 200


class NestedTooDeeplyError(CassetteFormatError):
    """The document nests deeper than :data:`MAX_DEPTH`: valid YAML, but not a cassette."""


class _TooDeep(Exception):
    """Raised from inside the composer; :func:`compose` turns it into NestedTooDeeplyError."""


def _no_path(*_args: Any) -> None:
    return None


_BASE_LOADER: type[Any] = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
#: True when the libyaml parser and emitter are in use.
USING_LIBYAML = _BASE_LOADER is not yaml.SafeLoader
_Loader: type[Any] = type(
    "CassetteLoader",
    (_BASE_LOADER,),
    {"resolve": _resolve, "descend_resolver": _no_path, "ascend_resolver": _no_path},
)


def _limit_depth(loader: Any) -> None:
    """Make ``loader``'s composer raise _TooDeep once it is about to go past MAX_DEPTH.

    The composer calls ``descend_resolver`` before it composes each node (not for an alias,
    which reuses a node) and ``ascend_resolver`` once the node is done, so counting the calls
    gives the exact depth, and the check runs before libyaml's C recursion goes one level
    deeper. Counting brackets in the text instead could not tell one inside a quoted string or
    a block scalar from a real one (and block sequences need no bracket at all): it would either
    refuse harmless bodies full of unbalanced brackets, or miss a file that hides a closing
    bracket in a string at every level. Closures over a local counter, set on the instance,
    cost about 1% of a load; methods reading an attribute of the loader cost 7%.
    """
    depth = 0

    def descend(_parent: Any, _index: Any) -> None:
        nonlocal depth
        depth += 1
        if depth > MAX_DEPTH:
            raise _TooDeep

    def ascend() -> None:
        nonlocal depth
        depth -= 1

    loader.descend_resolver = descend
    loader.ascend_resolver = ascend


def compose(data: bytes, source: str = "<string>") -> Node | None:
    """The YAML node tree of ``data`` (nothing constructed), or None for an empty document."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise CassetteFormatError(f"{source}: cassettes are UTF-8, this file is UTF-16")
    loader = _Loader(data)
    _limit_depth(loader)
    try:
        node: Node | None = loader.get_single_node()
        return node
    except yaml.YAMLError as exc:
        raise CassetteFormatError(f"{source}: not valid YAML: {_describe(exc)}") from None
    except (_TooDeep, RecursionError):  # RecursionError: PyYAML's own composer, without libyaml
        raise _too_deep(source) from None
    finally:
        loader.dispose()


def _too_deep(source: str) -> NestedTooDeeplyError:
    return NestedTooDeeplyError(f"{source}: nested too deeply to be a cassette")


def unsafe_tags(root: Node) -> list[tuple[str, int]]:
    """Every tag outside :data:`SAFE_TAGS` as (tag as written, 1-based line), in document order."""
    found: list[tuple[str, int]] = []
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.tag not in SAFE_TAGS:
            found.append((short_tag(node.tag), node.start_mark.line + 1))
        if isinstance(node, MappingNode):
            stack.extend(part for pair in reversed(node.value) for part in reversed(pair))
        elif isinstance(node, SequenceNode):
            stack.extend(reversed(node.value))
    return found


def short_tag(tag: str) -> str:
    """``tag:yaml.org,2002:python/object`` → ``!!python/object``; other tags unchanged."""
    return "!!" + tag[len(_T) :] if tag.startswith(_T) else tag


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building a large, acyclic object tree.

    Composing a cassette allocates hundreds of thousands of containers; each allocation burst
    triggers collections that traverse everything built so far. That is more than half of the
    load time otherwise, and nothing built here forms a cycle that would need collecting.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_data(data: bytes, source: str = "<string>") -> Any:
    """The plain data (dicts, lists, str, bytes, numbers) of one YAML document, checked for
    unsafe tags before anything is built. Call it inside :func:`gc_paused` for large files."""
    root = compose(data, source)
    if root is not None and _may_hold_tags(data):
        bad = unsafe_tags(root)
        if bad:
            _refuse(bad[0], source)
    return document_data(root, source)


def document_data(root: Node | None, source: str = "<string>") -> Any:
    """The plain data of a composed document whose tags were checked; an empty one is refused."""
    if root is None:
        raise CassetteFormatError(f"{source}: the file is empty, not a cassette")
    return construct(root, source)


def _refuse(tag_and_line: tuple[str, int], source: str) -> None:
    tag, line = tag_and_line
    raise UnsafeCassetteError(
        f"{source}, line {line}: refusing YAML tag {tag}; a cassette may only use the standard "
        f"YAML types and !!binary (a python/* tag could run code when loaded)"
    )


def construct(root: Node, source: str = "<string>") -> Any:
    """Build plain Python data from checked nodes; faster than SafeConstructor, same result.

    An alias gives the very object its anchor built (as PyYAML does). When the document has any
    (or a rare tag that PyYAML's own constructor builds), :func:`check_aliases` then refuses
    cycles and alias bombs.
    """
    loader = _Loader(b"")  # only its constructor methods are used, for the rare tags
    memo: dict[int, Any] = {}
    bool_values = loader.bool_values
    check_sharing = False

    def build(node: Any) -> Any:
        nonlocal check_sharing
        tag = node.tag
        if tag == _STR:
            return node.value
        if tag in (_MAP, _SEQ):
            done = memo.get(id(node))
            if done is not None:
                check_sharing = True  # only an alias reaches a collection node a second time
                return done
            if tag == _SEQ:
                items: list[Any] = []
                memo[id(node)] = items
                items.extend(map(build, node.value))
                return items
            mapping: dict[Any, Any] = {}
            memo[id(node)] = mapping
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE:
                    _merge_into(mapping, node, build, source)
                    return mapping
                key = build(key_node)
                try:
                    mapping[key] = build(value_node)
                except TypeError:
                    raise _unhashable(key_node, source) from None
            return mapping
        if tag == _INT:
            value = node.value
            if value.isdigit() and (value[0] != "0" or len(value) == 1):
                return int(value)
            return loader.construct_yaml_int(node)
        if tag == _FLOAT:
            return _float(node, loader)
        if tag == _NULL:
            return None
        if tag == _BOOL:
            return bool_values[node.value.lower()]
        if tag == _BINARY:
            return _binary(node, source)
        if tag == _VALUE:
            return node.value
        if tag in SAFE_TAGS:
            check_sharing = True  # PyYAML's constructor keeps its own record of aliases
            return loader.construct_object(node, deep=True)
        _refuse((short_tag(tag), node.start_mark.line + 1), source)
        return None  # unreachable: _refuse always raises

    try:
        data = build(root)
    except yaml.YAMLError as exc:
        raise CassetteFormatError(f"{source}: {_describe(exc)}") from None
    except RecursionError:  # only PyYAML's constructor recurses more than once per level
        raise _too_deep(source) from None
    finally:
        loader.dispose()
    if check_sharing:
        check_aliases(root, source)
    return data


def _float(node: ScalarNode, loader: Any) -> float:
    try:
        return float(node.value)
    except ValueError:  # .inf, .nan, 1_000.5, 190:20:30.15: YAML's own spellings
        value: float = loader.construct_yaml_float(node)
        return value


def _unhashable(key_node: Node, source: str) -> CassetteFormatError:
    return CassetteFormatError(
        f"{source}, line {key_node.start_mark.line + 1}: unhashable mapping key"
    )


def _merge_into(
    mapping: dict[Any, Any], node: MappingNode, build: Callable[[Node], Any], source: str
) -> None:
    # PyYAML's rules, on built (hence shared) mappings rather than copied pairs: merged keys come
    # first, in the order of the merge keys; within one merge key's list the first mapping
    # listed wins; the mapping's own keys win over all merged ones.
    mapping.clear()  # the keys built before the first merge key come after the merged ones
    own: list[tuple[Node, Any, Any]] = []
    for key_node, value_node in node.value:
        if key_node.tag != _MERGE:
            own.append((key_node, build(key_node), build(value_node)))
            continue
        sources = value_node.value if value_node.tag == _SEQ else [value_node]
        for source_node in reversed(sources):
            if source_node.tag != _MAP:
                raise CassetteFormatError(
                    f"{source}, line {source_node.start_mark.line + 1}: a merge key (<<) takes "
                    f"a mapping or a list of mappings"
                )
            mapping.update(build(source_node))
    for key_node, key, value in own:
        try:
            mapping[key] = value
        except TypeError:
            raise _unhashable(key_node, source) from None


def _binary(node: ScalarNode, source: str) -> bytes:
    # Strict: base64.decodebytes, which PyYAML uses, drops whatever is not base64 and so reads
    # "%%%%" as no bytes at all. YAML folds a long value over lines, so whitespace is allowed.
    try:
        return binascii.a2b_base64(b"".join(node.value.encode("ascii").split()), strict_mode=True)
    except (UnicodeEncodeError, binascii.Error):
        raise CassetteFormatError(
            f"{source}, line {node.start_mark.line + 1}: !!binary value is not base64"
        ) from None


#: An alias bomb: aliases that would expand the document beyond both this many nodes and
#: :data:`ALIAS_EXPANSION_RATIO` times the nodes written. vcrpy writes an anchor for a headers
#: mapping that interactions share, which stays far below either.
ALIAS_EXPANSION_FLOOR = 100_000
ALIAS_EXPANSION_RATIO = 10


def check_aliases(root: Node, source: str = "<string>") -> None:
    """Refuse a node graph with a cycle, or that expands far beyond its written size.

    Every node is visited once (a post-order walk with an explicit stack), and the expanded size
    of each collection, counting a shared node every time it is used, is kept by node.
    """
    if isinstance(root, ScalarNode):
        return
    expanded: dict[int, int] = {}
    on_path: set[int] = set()
    written = 0
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        if isinstance(node, ScalarNode):
            continue
        children = _children(node)
        if finished:
            on_path.discard(id(node))
            expanded[id(node)] = 1 + sum(expanded.get(id(child), 1) for child in children)
            continue
        if id(node) in expanded:
            continue
        if id(node) in on_path:
            raise CassetteFormatError(
                f"{source}, line {node.start_mark.line + 1}: a YAML alias refers to a node that "
                f"contains it; a cassette cannot hold a cycle"
            )
        on_path.add(id(node))
        written += 1 + len(children)
        stack.append((node, True))
        stack.extend((child, False) for child in children)
    limit = max(ALIAS_EXPANSION_FLOOR, ALIAS_EXPANSION_RATIO * written)
    if expanded[id(root)] > limit:
        raise CassetteFormatError(
            f"{source}: YAML aliases expand to more than {limit:,} nodes from {written:,} "
            f"written; a cassette never repeats that much (an alias bomb?)"
        )


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    children: list[Node] = node.value
    return children


def _describe(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{problem} (line {mark.line + 1})" if mark is not None else problem
