"""Response scripts, script queues and reply planning: pure data, tested without a server."""

from __future__ import annotations

import re
import threading
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fake_upstreams.chunking import ChunkPlan
from fake_upstreams.faults import FAULT_KINDS, Fault
from fake_upstreams.reply import plan_reply
from fake_upstreams.script import ResponseScript, ScriptQueue, framing_from_dict, word_pieces
from providers.wire.common import ChatRequest, Framing
from tests._dummy_codec import CODEC, DummyCodec
from tests.test_fake_chunking import plans

CHAT = ChatRequest(
    "dummy-1", ({"role": "system", "content": "x"}, {"role": "user", "content": "hi there"})
)
seconds = st.floats(0, 5, allow_nan=False)


@st.composite
def faults(draw: st.DrawFn) -> Fault:
    return Fault(
        draw(st.sampled_from(FAULT_KINDS)),
        after_bytes=draw(st.integers(0, 100)),
        seconds=draw(seconds),
        interval=draw(seconds),
        size=draw(st.integers(1, 100)),
        seed=draw(st.integers(0, 2**32)),
    )


framings = st.builds(
    Framing,
    done=st.sampled_from(["once", "missing", "twice", "then-content"]),
    crlf=st.booleans(),
    keepalive_comments=st.booleans(),
    role_first_delta=st.booleans(),
    empty_first_delta=st.booleans(),
    finish_chunk=st.booleans(),
    last_line_newline=st.booleans(),
    text_encoding=st.sampled_from(["utf-8", "latin-1"]),
)


@st.composite
def scripts(draw: st.DrawFn) -> ResponseScript:
    content = draw(st.sampled_from(["default", "text", "pieces", "raw"]))
    return ResponseScript(
        text=draw(st.text()) if content == "text" else None,
        pieces=tuple(draw(st.lists(st.text(), max_size=3))) if content == "pieces" else None,
        raw=tuple(draw(st.lists(st.binary(), max_size=3))) if content == "raw" else None,
        chunking=draw(plans()),
        first_byte_delay=draw(seconds),
        chunk_delay=draw(seconds),
        chunk_delays=tuple(draw(st.lists(seconds, max_size=3))),
        framing=draw(framings),
        status=draw(st.none() | st.integers(200, 599)),
        http_error=draw(st.none() | st.sampled_from(["server-error", "cloudflare", "rate-limit"])),
        retry_after=draw(st.integers(0, 3600)),
        fault=draw(st.none() | faults()),
        headers=tuple(draw(st.lists(st.tuples(st.text(), st.text()), max_size=2))),
    )


@given(script=scripts())
def test_script_dict_round_trip(script: ResponseScript) -> None:
    assert ResponseScript.from_dict(script.to_dict()) == script


def test_default_script_is_an_empty_dict() -> None:
    assert ResponseScript().to_dict() == {}
    assert ResponseScript.from_dict({}) == ResponseScript()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"txt": "hi"}, "unknown script key 'txt'"),
        ({"text": 3}, "script key 'text' must be a string"),
        ({"text": "a", "pieces": ["b"]}, "only one of text, pieces, raw"),
        ({"pieces": ["a", 1]}, "'pieces' must be a list of strings"),
        ({"raw": [{"base64": "!!"}]}, "not valid base64"),
        ({"raw": [{"hex": "00"}]}, "unknown raw chunk key 'hex'"),
        ({"first_byte_delay": -1}, "'first_byte_delay' must be a finite number >= 0"),
        ({"chunk_delay": "1"}, "'chunk_delay' must be a number"),
        ({"chunk_delays": [0.1, True]}, "'chunk_delays' must be a list of numbers"),
        ({"chunk_delay": 1e9}, "'chunk_delay' must be a number <= 300"),
        ({"status": 99}, "status must be 200..599"),
        ({"status": "200"}, "'status' must be an integer"),
        ({"http_error": "teapot"}, "'http_error' must be one of server-error, cloudflare"),
        ({"retry_after": -5}, "'retry_after' must be an integer >= 0"),
        ({"fault": "melt"}, "'kind' must be one of reset-before-headers"),
        ({"fault": {"after_bytes": 3}}, "fault needs a 'kind'"),
        ({"fault": {"kind": "stall", "seconds": 301}}, "'seconds' must be a number <= 300"),
        ({"fault": {"kind": "truncate", "after": 3}}, "unknown fault key 'after'"),
        ({"framing": {"done": "never"}}, "'done' must be one of once, missing"),
        ({"framing": {"crlf": 1}}, "'crlf' must be true or false"),
        ({"framing": {"text_encoding": "klingon"}}, "names no codec"),
        ({"framing": {"dn": "once"}}, "unknown framing key 'dn'"),
        ({"chunking": {"kind": "every", "size": 0}}, "'size' must be an integer >= 1"),
        ({"headers": [["a"]]}, "'headers' must hold [name, value] string pairs"),
        ({"headers": {"a": "b"}}, "'headers' must be a list"),
        ("text", "script must be an object"),
    ],
)
def test_bad_script_dicts_name_the_problem(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ResponseScript.from_dict(data)


@given(text=st.text())
def test_word_pieces_rebuild_the_text(text: str) -> None:
    pieces = word_pieces(text)
    assert "".join(pieces) == text
    assert all(pieces)


def test_word_pieces_cut_after_whitespace() -> None:
    assert word_pieces("You said:  hi\nthere") == ["You ", "said:  ", "hi\n", "there"]
    assert word_pieces(" lead") == [" ", "lead"]


def test_framing_from_dict_keeps_defaults() -> None:
    assert framing_from_dict({"crlf": True}) == Framing(crlf=True)


# --- planning a reply ---------------------------------------------------------------------------


def test_default_reply_echoes_the_last_user_message_one_frame_per_chunk() -> None:
    reply = plan_reply(ResponseScript(), CODEC, CHAT)
    assert reply.status == 200
    assert reply.headers == (("Content-Type", "text/event-stream"),)
    assert reply.chunked
    assert reply.chunks == (
        b"data: You \n\n",
        b"data: said: \n\n",
        b"data: hi \n\n",
        b"data: there\n\n",
        b"data: [DONE]\n\n",
    )
    other = ChatRequest("dummy-1", ({"role": "user", "content": "bye"},))
    assert plan_reply(ResponseScript(), CODEC, other).body == (
        b"data: You \n\ndata: said: \n\ndata: bye\n\ndata: [DONE]\n\n"
    )


def test_text_pieces_framing_and_chunking_reach_the_plan() -> None:
    script = ResponseScript(
        pieces=("é", "b"), framing=Framing(done="missing"), chunking=ChunkPlan("utf8")
    )
    assert plan_reply(script, CODEC, CHAT).chunks == (b"data: \xc3", b"\xa9\n\ndata: b\n\n")
    assert plan_reply(ResponseScript(text="a b"), CODEC, CHAT).chunks == (
        b"data: a \n\n",
        b"data: b\n\n",
        b"data: [DONE]\n\n",
    )


def test_raw_chunks_bypass_the_codec() -> None:
    reply = plan_reply(ResponseScript(raw=(b"\xff", b"no framing")), CODEC, CHAT)
    assert reply.chunks == (b"\xff", b"no framing")
    assert reply.headers == (("Content-Type", "text/event-stream"),)


def test_status_comes_from_the_codec_unless_overridden() -> None:
    class CreatedCodec(DummyCodec):
        success_status = 201

    assert plan_reply(ResponseScript(), CreatedCodec(), CHAT).status == 201
    assert plan_reply(ResponseScript(status=202), CreatedCodec(), CHAT).status == 202


def test_script_headers_win_over_the_codec_content_type() -> None:
    script = ResponseScript(headers=(("content-type", "text/plain"), ("X-Extra", "1")))
    assert plan_reply(script, CODEC, CHAT).headers == (
        ("content-type", "text/plain"),
        ("X-Extra", "1"),
    )


def test_http_error_pages() -> None:
    server_error = plan_reply(ResponseScript(http_error="server-error"), CODEC, CHAT)
    assert (server_error.status, server_error.body, server_error.chunked) == (500, b"Error", False)
    denied = plan_reply(ResponseScript(http_error="cloudflare"), CODEC, CHAT)
    assert denied.status == 403
    assert b"Access denied | api.dummy.example used Cloudflare to restrict access" in denied.body
    assert ("Content-Type", "text/html; charset=UTF-8") in denied.headers
    limited = plan_reply(ResponseScript(http_error="rate-limit", retry_after=7), CODEC, CHAT)
    assert limited.status == 429
    assert ("Retry-After", "7") in limited.headers


def test_delays_and_fault_are_carried_over() -> None:
    fault = Fault("truncate", after_bytes=3)
    script = ResponseScript(first_byte_delay=0.5, chunk_delay=0.1, chunk_delays=(0.3,), fault=fault)
    reply = plan_reply(script, CODEC, CHAT)
    assert reply.first_byte_delay == 0.5
    assert reply.delays == (0.0, 0.3, 0.1, 0.1, 0.1)
    assert reply.fault == fault
    dripped = reply.with_chunks([b"a", b"b"], 0.2)
    assert (dripped.chunks, dripped.delays) == ((b"a", b"b"), (0.0, 0.2))


def test_offsets_beyond_the_reply_are_an_error_at_planning_time() -> None:
    with pytest.raises(ValueError, match="not inside the body"):
        plan_reply(ResponseScript(text="ab", chunking=ChunkPlan.at([500])), CODEC, CHAT)


# --- script queues ------------------------------------------------------------------------------


def test_queue_hands_out_scripts_per_call_then_the_default() -> None:
    first, second, default = (ResponseScript(text=t) for t in ("1", "2", "d"))
    queue = ScriptQueue([first], default)
    queue.push(second)
    assert [queue.next() for _ in range(4)] == [first, second, default, default]
    assert queue.calls == 4
    queue.reset()
    assert (queue.calls, queue.pending, queue.default) == (0, (), ResponseScript())


def test_queue_load_forms() -> None:
    queue = ScriptQueue()
    queue.load({"text": "only"})
    assert (queue.pending, queue.default) == ((), ResponseScript(text="only"))
    queue.load({"queue": [{"http_error": "rate-limit"}, {}], "default": {"text": "d"}})
    assert queue.pending == (ResponseScript(http_error="rate-limit"), ResponseScript())
    assert queue.default == ResponseScript(text="d")
    assert queue.to_dict() == {
        "queue": [{"http_error": "rate-limit"}, {}],
        "default": {"text": "d"},
        "calls": 0,
    }
    with pytest.raises(ValueError, match="unknown script queue key 'defaults'"):
        queue.load({"queue": [], "defaults": {}})
    with pytest.raises(ValueError, match="'queue' must be a list"):
        queue.load({"queue": {}})


def test_queue_is_thread_safe() -> None:
    queued = [ResponseScript(text=str(n)) for n in range(400)]
    queue = ScriptQueue(queued)
    taken: list[ResponseScript] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = [queue.next() for _ in range(100)]
        with lock:
            taken.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken, key=lambda s: int(s.text or "")) == queued
    assert queue.calls == 400


@given(fault=faults())
def test_fault_dict_round_trip(fault: Fault) -> None:
    assert Fault.from_dict(fault.to_dict()) == fault
    assert Fault.from_dict(fault.kind) == replace(
        fault, after_bytes=0, seconds=5.0, interval=0.01, size=64, seed=0
    )
