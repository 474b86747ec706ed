"""The cassette document: the plain dict shape of a cassette file, to and from the model.

The shape is vcrpy's, field for field, so plain vcrpy replays the file:

- top level: ``version: 1`` and ``interactions``; vcrpy ignores other keys (``tapedeck:`` here)
  and keeps ``metadata``;
- request: exactly ``method``, ``uri``, ``headers``, ``body`` (vcrpy calls ``Request(**request)``,
  so one more key makes it fail);
- response: ``status: {code, message}``, ``headers`` (name → list of values), ``body: {string}``
  (text when the bytes are valid UTF-8, else bytes, written as ``!!binary``); vcrpy keeps unknown
  response keys, which is where ``chunks`` lives.

Reading checks every field once, cheaply, and says where a problem is (file, interaction number,
field), because the loader is on the hot path of every replay. Beyond the shape, it refuses what
HTTP cannot carry, so that a replay never fails half-way through a response: a request URI that
does not parse as a URL, a status outside 100..599 (RFC 9110 §15), a header name that is not a
token, and a header value holding a control character other than tab (CR, LF and NUL would let a
value inject headers; aiohttp refuses every one of them when it sends the response).
"""

from __future__ import annotations

from itertools import chain
from typing import Any, NoReturn
from urllib.parse import urlsplit

from cassettes.chunks import ChunkPlan
from cassettes.model import (
    FORMAT_VERSION,
    SOURCES,
    VCR_FORMAT_VERSION,
    Cassette,
    Headers,
    Interaction,
    Provenance,
    RecordedRequest,
    RecordedResponse,
)
from providers.errors import CassetteFormatError
from providers.wire.http_fields import forbidden_in_value, is_header_name

_TOP_KEYS = ("version", "tapedeck", "interactions")
_REQUEST_KEYS = frozenset({"method", "uri", "headers", "body"})
_RESPONSE_KEYS = ("status", "headers", "body", "chunks")
_PROVENANCE_KEYS = ("target_url", "recorded_at", "tool_version", "source")
#: RFC 9110 §15: "values outside the range 100..599 are invalid".
STATUS_RANGE = range(100, 600)
#: Header names already found valid. Every interaction repeats the same few names, and a set
#: lookup costs a fifth of a regex match; the cap keeps a stream of odd names from growing it.
_VALID_NAMES: set[str] = set()
_VALID_NAMES_CAP = 4096


def _fail(where: str, problem: str) -> NoReturn:
    raise CassetteFormatError(f"{where}: {problem}")


def document_to_cassette(document: Any, source: str) -> Cassette:
    """Check a loaded document and build the :class:`Cassette` it describes."""
    if isinstance(document, list):
        _fail(source, "a cassette from vcrpy before 1.0 (no version); re-record it")
    if type(document) is not dict:
        _fail(source, f"not a cassette: the top level is a {type(document).__name__}")
    version = document.get("version")
    if version != VCR_FORMAT_VERSION or type(version) is not int:
        _fail(source, f"'version' must be {VCR_FORMAT_VERSION}, got {version!r}")
    provenance = _provenance(document.get("tapedeck"), source)
    raw = document.get("interactions")
    if type(raw) is not list:
        _fail(source, "'interactions' must be a list")
    interactions = tuple([_interaction(item, number, source) for number, item in enumerate(raw)])
    extra = {key: value for key, value in document.items() if key not in _TOP_KEYS}
    return Cassette(interactions, provenance, extra)


def _provenance(block: Any, source: str) -> Provenance | None:
    if block is None:
        return None  # a plain vcrpy cassette
    where = f"{source}, tapedeck"
    if type(block) is not dict or not set(block) <= {"format", "provenance"}:
        _fail(where, "must be a mapping with 'format' and optionally 'provenance'")
    fmt = block.get("format")
    if type(fmt) is not int or fmt < 1:
        _fail(where, f"'format' must be a positive int, got {fmt!r}")
    if fmt > FORMAT_VERSION:
        _fail(where, f"format {fmt} is newer than this Tapedeck reads ({FORMAT_VERSION}); upgrade")
    raw = block.get("provenance")
    if raw is None:
        return None
    if type(raw) is not dict or set(raw) != set(_PROVENANCE_KEYS):
        _fail(where, f"'provenance' must have exactly the keys {', '.join(_PROVENANCE_KEYS)}")
    values = [raw[key] for key in _PROVENANCE_KEYS]
    if not all(type(value) is str for value in values):
        _fail(where, "every provenance value must be a string")
    if raw["source"] not in SOURCES:
        _fail(where, f"provenance source must be one of {', '.join(SOURCES)}")
    return Provenance(*values)


def _interaction(raw: Any, number: int, source: str) -> Interaction:
    where = f"{source}, interaction {number}"
    if type(raw) is not dict:
        _fail(where, "must be a mapping with 'request' and 'response'")
    request = _request(raw.get("request"), where)
    response = _response(raw.get("response"), where)
    extra = (
        {k: v for k, v in raw.items() if k not in ("request", "response")} if len(raw) > 2 else {}
    )
    return Interaction(request, response, extra)


def _request(raw: Any, where: str) -> RecordedRequest:
    if type(raw) is not dict:
        _fail(where, "'request' must be a mapping")
    if raw.keys() != _REQUEST_KEYS:
        missing = sorted(_REQUEST_KEYS - raw.keys())
        unknown = sorted(str(key) for key in raw.keys() - _REQUEST_KEYS)
        _fail(
            where,
            f"request needs exactly method, uri, headers, body (vcrpy refuses anything else); "
            f"missing {missing}, unknown {unknown}",
        )
    method, uri = raw["method"], raw["uri"]
    if type(method) is not str or type(uri) is not str:
        _fail(where, "request method and uri must be strings")
    try:
        # urlsplit checks IPv6 brackets; the port is checked only when read, and needs a colon.
        parts = urlsplit(uri)
        if ":" in parts.netloc:
            parts.port  # noqa: B018
    except ValueError:
        _fail(where, "request uri is not a valid URL")
    headers = _headers(raw["headers"], where, "request")
    return RecordedRequest(method, uri, headers, _body(raw["body"], where, "request", none_ok=True))


def _response(raw: Any, where: str) -> RecordedResponse:
    if type(raw) is not dict:
        _fail(where, "'response' must be a mapping")
    status = raw.get("status")
    if type(status) is not dict or type(status.get("code")) is not int:
        _fail(where, "response.status must be a mapping with an int 'code'")
    if status["code"] not in STATUS_RANGE:
        _fail(where, f"response.status.code must be from 100 to 599, got {status['code']}")
    reason = status.get("message")
    if type(reason) is not str:
        _fail(where, "response.status.message must be a string")
    headers = _headers(raw.get("headers"), where, "response")
    body_block = raw.get("body")
    if type(body_block) is not dict or not set(body_block) <= {"string"}:
        _fail(where, "response.body must be a mapping with one key, 'string'")
    body = _body(body_block.get("string"), where, "response", none_ok=False) or b""
    chunks = _chunks(raw.get("chunks"), len(body), where)
    extra = {k: v for k, v in raw.items() if k not in _RESPONSE_KEYS} if len(raw) > 4 else {}
    try:
        return RecordedResponse(status["code"], reason, headers, body, chunks, extra)
    except CassetteFormatError as exc:
        _fail(where, f"response.chunks: {exc}")


def _headers(raw: Any, where: str, side: str) -> Headers:
    # Each check looks at all the headers at once, in C, and only a failed one goes back over
    # them one by one to say which header is wrong: this runs for every interaction of a load.
    if type(raw) is not dict:
        _fail(where, f"{side}.headers must be a mapping of name to a list of values")
    for name, values in raw.items():
        if type(name) is not str or type(values) is not list:
            _fail(where, f"{side}.headers[{name!r}] must be a list of strings")
    try:
        everything = " ".join(chain.from_iterable(raw.values()))
    except TypeError:  # a value that is not a string
        for name, values in raw.items():
            for value in values:
                if type(value) is not str:
                    _fail(where, f"{side}.headers[{name!r}] holds a {type(value).__name__}")
    if not _VALID_NAMES.issuperset(raw):
        for name in raw:
            if not is_header_name(name):
                _fail(where, f"{side}.headers[{name!r}] is not a valid HTTP header name")
            if len(_VALID_NAMES) < _VALID_NAMES_CAP:
                _VALID_NAMES.add(name)
    # isprintable() is a quick "nothing to forbid" for almost every header; a tab or some
    # non-ASCII text makes it false, and the exact search then allows them.
    if not everything.isprintable() and forbidden_in_value(everything):
        for name, values in raw.items():
            for value in values:
                found = forbidden_in_value(value)
                if found:
                    _fail(
                        where,
                        f"{side}.headers[{name!r}] holds {found!r}, which HTTP forbids in a "
                        f"header value",
                    )
    return raw


def _body(raw: Any, where: str, side: str, *, none_ok: bool) -> bytes | None:
    if type(raw) is str:
        try:
            return raw.encode("utf-8")
        except UnicodeEncodeError:
            _fail(where, f"{side} body holds a character UTF-8 cannot encode")
    if type(raw) is bytes or (raw is None and none_ok):
        return raw
    if raw is None:
        return b""  # vcrpy reads a missing response body as empty too
    _fail(where, f"{side} body must be text or !!binary, got {type(raw).__name__}")


def _chunks(raw: Any, body_length: int, where: str) -> ChunkPlan:
    try:
        if raw is None:
            # A cassette vcrpy wrote: all we know is that the body arrived, so say "at once".
            return ChunkPlan.from_sizes([body_length] if body_length else [])
        if type(raw) is str:
            return ChunkPlan.parse(raw, body_length)
        if type(raw) is list and all(type(p) is list and len(p) == 2 for p in raw):
            return ChunkPlan.checked(body_length, [p[0] for p in raw], [p[1] for p in raw])
    except CassetteFormatError as exc:
        _fail(where, f"response.chunks: {exc}")
    _fail(where, "response.chunks must be a plan like '12@0.0 30@1.5' or [size, offset_ms] pairs")


def cassette_to_document(cassette: Cassette) -> dict[str, Any]:
    """The plain-data document for ``cassette``, ready for a YAML dumper."""
    tapedeck: dict[str, Any] = {"format": FORMAT_VERSION}
    if cassette.provenance is not None:
        p = cassette.provenance
        tapedeck["provenance"] = {
            "target_url": p.target_url,
            "recorded_at": p.recorded_at,
            "tool_version": p.tool_version,
            "source": p.source,
        }
    document: dict[str, Any] = {"version": VCR_FORMAT_VERSION, "tapedeck": tapedeck}
    document.update((k, v) for k, v in cassette.extra.items() if k not in _TOP_KEYS)
    document["interactions"] = [_interaction_document(i) for i in cassette.interactions]
    return document


def _interaction_document(interaction: Interaction) -> dict[str, Any]:
    request, response = interaction.request, interaction.response
    response_doc: dict[str, Any] = {
        "status": {"code": response.status, "message": response.reason},
        "headers": response.headers,
        "body": {"string": _text_or_bytes(response.body)},
        "chunks": response.plan.text(),
    }
    response_doc.update((k, v) for k, v in response.extra.items() if k not in _RESPONSE_KEYS)
    document: dict[str, Any] = {
        "request": {
            "method": request.method,
            "uri": request.uri,
            "headers": request.headers,
            "body": None if request.body is None else _text_or_bytes(request.body),
        },
        "response": response_doc,
    }
    document.update((k, v) for k, v in interaction.extra.items() if k not in document)
    return document


def _text_or_bytes(body: bytes) -> str | bytes:
    # vcrpy's rule: text when the bytes decode as UTF-8 (readable in the file), else bytes.
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body
