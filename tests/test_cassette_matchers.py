"""Request keys, body normalisers, closest-candidate reports and the O(1) interaction index."""

from __future__ import annotations

import json
import threading
from collections.abc import Hashable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cassettes.index import InteractionIndex
from cassettes.matchers import BodyNormalisers, Matcher, json_body, query_part
from cassettes.model import Interaction, RecordedRequest, RecordedResponse
from providers.errors import NoMatchingInteractionError

URL = "http://127.0.0.1:8080"

json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=6), json_values, max_size=5)


def _reorder(value: Any, draw: st.DrawFn) -> Any:
    """The same JSON value with every object's keys in a drawn order."""
    if isinstance(value, dict):
        keys = draw(st.permutations(list(value)))
        return {key: _reorder(value[key], draw) for key in keys}
    if isinstance(value, list):
        return [_reorder(item, draw) for item in value]
    return value


def post(body: bytes | None, path: str = "/api/chat", query: str = "") -> RecordedRequest:
    uri = f"{URL}{path}" + (f"?{query}" if query else "")
    return RecordedRequest("POST", uri, {"Content-Type": ["application/json"]}, body)


def interaction(request: RecordedRequest, text: str) -> Interaction:
    return Interaction(request, RecordedResponse.whole(200, "OK", {}, text.encode()))


# --- keys ---------------------------------------------------------------------------------------


@given(value=json_objects, data=st.data())
def test_the_body_key_ignores_key_order_and_whitespace(value: dict[str, Any], data: Any) -> None:
    indent = data.draw(st.none() | st.integers(0, 3))
    separators = data.draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,", " : ")]))
    ascii_only = data.draw(st.booleans())
    original = json.dumps(value).encode()
    rewritten = json.dumps(
        _reorder(value, data.draw), indent=indent, separators=separators, ensure_ascii=ascii_only
    ).encode("utf-8")
    matcher = Matcher()
    assert matcher.key(post(original)) == matcher.key(post(b" \n" + rewritten + b"\n"))


@given(value=json_objects, extra=json_scalars)
def test_a_different_value_gives_a_different_body_key(value: dict[str, Any], extra: Any) -> None:
    changed = {**value, "\x00changed": extra}
    assert json_body(post(json.dumps(value).encode())) != json_body(
        post(json.dumps(changed).encode())
    )


def test_json_number_and_boolean_types_are_not_confused() -> None:
    keys = {json_body(post(text.encode())) for text in ['{"a": 1}', '{"a": 1.0}', '{"a": true}']}
    assert len(keys) == 3


def test_bodies_that_are_not_json_compare_as_bytes() -> None:
    assert json_body(post(b"\xff\x00 not json")) == ("bytes", b"\xff\x00 not json")
    assert json_body(post(None)) == json_body(post(b""))


@given(
    pairs=st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from(["1", "2", ""])), max_size=5)
)
def test_the_query_key_ignores_parameter_order(pairs: list[tuple[str, str]]) -> None:
    query = "&".join(f"{k}={v}" for k, v in pairs)
    shuffled = "&".join(f"{k}={v}" for k, v in reversed(pairs))
    assert query_part(post(None, query=query)) == query_part(post(None, query=shuffled))
    assert query_part(post(None, query=query)) == tuple(sorted(pairs))


def test_method_case_and_empty_path_do_not_matter() -> None:
    matcher = Matcher(("method", "path"))
    assert matcher.key(RecordedRequest("get", URL)) == matcher.key(
        RecordedRequest("GET", URL + "/")
    )


def test_unknown_matcher_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown matchers"):
        Matcher(("method", "headers"))


def test_keys_are_computed_on_scrubbed_requests() -> None:
    recorded = post(b'{"q": 1, "api_key": "<scrubbed>"}', query="token=%3Cscrubbed%3E")
    live = post(b'{"api_key": "real-key-123", "q": 1}', query="token=live-token-456")
    assert Matcher().key(recorded) == Matcher().key(live)
    assert Matcher(scrub=None).key(recorded) != Matcher(scrub=None).key(live)


# --- body normalisers -----------------------------------------------------------------------------


def _without_nonce(request: RecordedRequest) -> Hashable:
    value = json.loads(request.body or b"{}")
    value.pop("nonce", None)
    return json.dumps(value, sort_keys=True)


def test_a_registered_normaliser_makes_differing_bodies_match() -> None:
    normalisers = BodyNormalisers()
    normalisers.register(_without_nonce, path="/api/chat/stream")
    matcher = Matcher(normalisers=normalisers)
    first = post(b'{"m": "hi", "nonce": "1"}', "/api/chat/stream")
    second = post(b'{"m": "hi", "nonce": "2"}', "/api/chat/stream")
    assert matcher.key(first) == matcher.key(second)
    # Elsewhere the default still applies.
    assert matcher.key(post(first.body)) != matcher.key(post(second.body))


def test_normalisers_are_chosen_by_host_and_path_then_path_then_host() -> None:
    normalisers = BodyNormalisers(default=lambda r: "default")
    normalisers.register(lambda r: "host", host="LOCALHOST")
    normalisers.register(lambda r: "path", path="/p")
    normalisers.register(lambda r: "both", host="localhost", path="/p")

    def pick(uri: str) -> Hashable:
        return normalisers(RecordedRequest("POST", uri))

    assert pick("http://localhost:1/p") == "both"
    assert pick("http://127.0.0.1/p") == "path"
    assert pick("http://localhost/q") == "host"
    assert pick("http://127.0.0.1/q") == "default"
    with pytest.raises(ValueError, match="path, a host or both"):
        normalisers.register(lambda r: 0)


# --- closest ----------------------------------------------------------------------------------


def test_closest_lists_the_nearest_recordings_and_what_differed() -> None:
    recorded = [
        RecordedRequest("GET", f"{URL}/api/models"),
        post(b'{"messages": [{"role": "user", "content": "hello"}], "t": 1}'),
        post(b'{"messages": [{"role": "user", "content": "bye"}], "t": 1}', query="x=1"),
    ]
    request = post(b'{"messages": [{"role": "user", "content": "hi"}], "t": 1}')
    candidates = Matcher().closest(request, recorded, n=3)
    assert [c.index for c in candidates] == [1, 2, 0]
    assert [c.differed for c in candidates] == [
        ("body",),
        ("query", "body"),
        ("method", "path", "body"),
    ]
    described = candidates[0].describe()
    assert "#1 POST" in described
    assert "fields messages" in described
    assert '"hello"' in described
    assert '"hi"' in described


# --- index ------------------------------------------------------------------------------------


def test_the_same_request_recorded_twice_gets_its_answers_in_order_once_each() -> None:
    request = post(b'{"m": 1}')
    index = InteractionIndex([interaction(request, "first"), interaction(request, "second")])
    assert index.match(request).response.body == b"first"
    assert index.match(request).response.body == b"second"
    with pytest.raises(NoMatchingInteractionError, match=r"#0, #1 .* already played"):
        index.match(request)
    assert index.played == (0, 1)


def test_allow_repeats_plays_the_last_answer_again() -> None:
    request = post(b'{"m": 1}')
    index = InteractionIndex(
        [interaction(request, "first"), interaction(request, "second")], allow_repeats=True
    )
    assert [index.match(request).response.body for _ in range(4)] == [
        b"first",
        b"second",
        b"second",
        b"second",
    ]


def test_interleaved_requests_each_keep_their_own_order() -> None:
    a, b = post(b'{"m": "a"}'), post(b'{"m": "b"}')
    index = InteractionIndex(
        [interaction(a, "a1"), interaction(b, "b1"), interaction(a, "a2"), interaction(b, "b2")]
    )
    got = [index.lookup(r)[0] for r in (b, a, a, b)]
    assert got == [1, 0, 2, 3]
    assert index.unplayed() == []
    index.reset()
    assert index.unplayed() == [0, 1, 2, 3]


def test_a_miss_names_the_closest_recordings_and_the_differing_matcher() -> None:
    index = InteractionIndex(
        [interaction(post(b'{"m": "a"}'), "x"), interaction(post(b"{}", "/other"), "y")],
        name="demo.yaml",
    )
    with pytest.raises(NoMatchingInteractionError) as caught:
        index.match(post(b'{"m": "b"}'))
    message = str(caught.value)
    assert "demo.yaml" in message
    assert message.index("#0 POST") < message.index("#1 POST")
    assert "body (fields m)" in message
    assert "path: recorded '/other'" in message
    assert isinstance(caught.value, LookupError)


def test_an_empty_cassette_says_so() -> None:
    with pytest.raises(NoMatchingInteractionError, match="has no interactions"):
        InteractionIndex([]).match(post(None))


@pytest.mark.parametrize("size", [10, 1000])
def test_a_lookup_normalises_only_the_request_it_answers(size: int) -> None:
    # O(1) per lookup: the recorded bodies are normalised once, when the index is built; a lookup
    # normalises one body (the incoming one) however large the cassette.
    calls: list[bytes | None] = []

    def counting(request: RecordedRequest) -> Hashable:
        calls.append(request.body)
        return json_body(request)

    matcher = Matcher(normalisers=BodyNormalisers(default=counting))
    requests = [post(json.dumps({"n": n}).encode()) for n in range(size)]
    index = InteractionIndex(
        [interaction(r, str(n)) for n, r in enumerate(requests)], matcher=matcher
    )
    assert len(calls) == size
    calls.clear()
    for n in (size - 1, 0, size // 2):
        assert index.match(requests[n]).response.body == str(n).encode()
    assert len(calls) == 3


def test_concurrent_lookups_play_every_interaction_exactly_once() -> None:
    request = post(b'{"same": true}')
    index = InteractionIndex([interaction(request, str(n)) for n in range(200)])
    got: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            number, _ = index.lookup(request)
            with lock:
                got.append(number)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(got) == list(range(200))
