"""Every chunking plan, framing option, HTTP error and fault, for every adapter and both doors.

Each case states its documented outcome per provider: the exact text, or the exact error class
from providers.errors (with ``partial``, ``status``, ``retry_after`` where they matter), reached
within the call's deadline. Where providers differ, the table says so explicitly:

- raw-text providers (Aivvm, AI365VIP) have no end marker: framing options do not apply, an
  empty body is an empty answer, and a stream cut short can only show as a broken HTTP framing
  (:class:`StreamResetError`);
- SSE providers (GetGpt, CodeLinkAva) end at ``data: [DONE]``: without it, or cut inside a
  line, the answer is a :class:`TruncatedStreamError` carrying the text so far, and they return
  at ``[DONE]`` without waiting for the connection to close.

Known adapter bugs are marked ``xfail(strict=True)`` with their diagnosis; the expected outcome
in the table is the correct one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from fake_upstreams.chunking import CHUNK_KINDS, ChunkPlan
from fake_upstreams.faults import FAULT_KINDS, Fault
from fake_upstreams.script import DONE_MODES, HTTP_ERROR_KINDS, ResponseScript
from fake_upstreams.server import FakeFleet
from providers.errors import (
    AccessDeniedError,
    MalformedReplyError,
    RateLimitedError,
    StreamResetError,
    TapedeckError,
    TruncatedStreamError,
    UpstreamHTTPError,
    UpstreamTimeoutError,
)
from providers.transport import Timeouts
from providers.wire.common import Framing
from tests import fakes_support as fs
from tests.fakes_support import DOORS, NAMES, RAW_TEXT, SSE, Door, Outcome, Raises, Text

pytestmark = pytest.mark.timeout(20)

MESSAGES = [{"role": "user", "content": "hi"}]
#: Multi-byte characters, a CRLF, and the SSE markers inside the content itself.
TEXT = "Привет, мир! 👋\r\nünïcødé ✓ — data: [DONE] ok"


fleet, _fakes_guard = fs.fleet_fixtures()


@dataclass(frozen=True)
class Case:
    """A script and its documented outcome per provider; ``bugs`` maps provider → diagnosis."""

    script: ResponseScript
    outcome: Mapping[str, Outcome]
    deadline: float = 5.0
    bugs: Mapping[str, str] = field(default_factory=dict)


def _same(outcome: Outcome) -> dict[str, Outcome]:
    return dict.fromkeys(NAMES, outcome)


def _by_kind(raw: Outcome, sse: Outcome) -> dict[str, Outcome]:
    return {name: raw if name in RAW_TEXT else sse for name in NAMES}


def _params(cases: Mapping[str, Case]) -> list[object]:
    params: list[object] = []
    for case_id, case in cases.items():
        for name in NAMES:
            for door in DOORS:
                bug = case.bugs.get(name)
                marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
                params.append(
                    pytest.param(case, name, door, id=f"{case_id}-{name}-{door}", marks=marks)
                )
    return params


async def _check(fleet: FakeFleet, case: Case, name: str, door: Door) -> None:
    server = fleet[name]
    server.state.scripts.replace(default=case.script)
    await fs.assert_outcome(
        case.outcome[name], name, door, server.url, MESSAGES, deadline=case.deadline
    )


# -- chunking plans: whatever the cuts, the correct decoding returns exactly the text ----------

PLANS: dict[str, ChunkPlan] = {
    "whole": ChunkPlan.whole(),
    "frames": ChunkPlan.frames(),
    "every-1": ChunkPlan.every(1),
    "every-2": ChunkPlan.every(2),
    "every-3": ChunkPlan.every(3),
    "every-5": ChunkPlan.every(5),
    "every-64": ChunkPlan.every(64),
    "utf8": ChunkPlan("utf8"),
    "data": ChunkPlan("data"),
    "crlf": ChunkPlan("crlf"),
    "done": ChunkPlan("done"),
    "random-0-max-3": ChunkPlan.random(0, 3),
    "random-1-max-7": ChunkPlan.random(1, 7),
    "random-2-max-16": ChunkPlan.random(2, 16),
    "random-99-max-2": ChunkPlan.random(99, 2),
    "offsets": ChunkPlan.at([1, 2, 3, 5, 8, 13, 21, 34]),
    "every-4-and-frames": ChunkPlan("every", size=4, with_frames=True),
}
PLAN_CASES = {
    plan_id: Case(
        ResponseScript(
            text=TEXT,
            chunking=plan,
            # CRLF line ends give the SSE bodies something for the crlf plan to cut.
            framing=Framing(crlf=plan_id == "crlf"),
        ),
        _same(Text(TEXT)),
    )
    for plan_id, plan in PLANS.items()
}


@pytest.mark.parametrize(("case", "name", "door"), _params(PLAN_CASES))
async def test_chunking_plan(fleet: FakeFleet, case: Case, name: str, door: Door) -> None:
    await _check(fleet, case, name, door)


# -- framing options ---------------------------------------------------------------------------

WORDS = "Grüße, 世界! 👋 ok"  # sent as the pieces "Grüße, ", "世界! ", "👋 ", "ok"
WITHOUT_LAST = "Grüße, 世界! 👋 "


def _framed(framing: Framing) -> ResponseScript:
    return ResponseScript(text=WORDS, framing=framing)


FRAMING_CASES = {
    "done-once": Case(_framed(Framing()), _same(Text(WORDS))),
    "done-missing": Case(
        _framed(Framing(done="missing")),
        _by_kind(Text(WORDS), Raises(TruncatedStreamError, partial=WORDS)),
    ),
    "done-twice": Case(_framed(Framing(done="twice")), _same(Text(WORDS))),
    # "AFTER-DONE" follows [DONE]: never part of the answer.
    "done-then-content": Case(_framed(Framing(done="then-content")), _same(Text(WORDS))),
    "keepalive-comments": Case(_framed(Framing(keepalive_comments=True)), _same(Text(WORDS))),
    "crlf": Case(_framed(Framing(crlf=True)), _same(Text(WORDS))),
    "empty-first-delta": Case(_framed(Framing(empty_first_delta=True)), _same(Text(WORDS))),
    "role-first-delta": Case(_framed(Framing(role_first_delta=True)), _same(Text(WORDS))),
    "finish-chunk": Case(_framed(Framing(finish_chunk=True)), _same(Text(WORDS))),
    # The unterminated last line is "data: [DONE]": never seen, so the end marker is missing.
    "last-line-without-newline": Case(
        _framed(Framing(last_line_newline=False)),
        _by_kind(Text(WORDS), Raises(TruncatedStreamError, partial=WORDS)),
    ),
    # The unterminated last line is the last piece's event: it never counts.
    "no-done-and-last-line-cut": Case(
        _framed(Framing(done="missing", last_line_newline=False)),
        _by_kind(Text(WORDS), Raises(TruncatedStreamError, partial=WITHOUT_LAST)),
    ),
    "all-at-once": Case(
        _framed(
            Framing(
                done="twice",
                crlf=True,
                keepalive_comments=True,
                role_first_delta=True,
                empty_first_delta=True,
                finish_chunk=True,
            )
        ),
        _same(Text(WORDS)),
    ),
    # An upstream that is not UTF-8 at all: a decoding error, never mojibake.
    "latin-1-body": Case(
        ResponseScript(text="Grüße, café", framing=Framing(text_encoding="latin-1")),
        _same(Raises(MalformedReplyError)),
    ),
    "all-at-once-every-byte": Case(
        ResponseScript(
            text=WORDS,
            chunking=ChunkPlan.every(1),
            framing=Framing(crlf=True, keepalive_comments=True, role_first_delta=True),
        ),
        _same(Text(WORDS)),
    ),
}


@pytest.mark.parametrize(("case", "name", "door"), _params(FRAMING_CASES))
async def test_framing_option(fleet: FakeFleet, case: Case, name: str, door: Door) -> None:
    await _check(fleet, case, name, door)


# -- HTTP errors as the real services gave them -------------------------------------------------

HTTP_ERROR_CASES = {
    "500-Error": Case(
        ResponseScript(http_error="server-error"),
        _same(Raises(UpstreamHTTPError, status=500, body="Error")),
    ),
    "403-cloudflare": Case(
        ResponseScript(http_error="cloudflare"),
        {
            name: Raises(
                AccessDeniedError,
                status=403,
                body_has=f"Access denied | {host} used Cloudflare to restrict access",
            )
            for name, host in fs.REAL_HOST.items()
        },
    ),
    "429-retry-after-7": Case(
        ResponseScript(http_error="rate-limit", retry_after=7),
        _same(Raises(RateLimitedError, status=429, retry_after=7.0)),
    ),
    "429-retry-after-0": Case(
        ResponseScript(http_error="rate-limit", retry_after=0),
        _same(Raises(RateLimitedError, status=429, retry_after=0.0)),
    ),
    "502-Error": Case(
        ResponseScript(http_error="server-error", status=502),
        _same(Raises(UpstreamHTTPError, status=502, body="Error")),
    ),
}


@pytest.mark.parametrize(("case", "name", "door"), _params(HTTP_ERROR_CASES))
async def test_http_error(fleet: FakeFleet, case: Case, name: str, door: Door) -> None:
    await _check(fleet, case, name, door)


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("name", NAMES)
async def test_rate_limited_then_served(fleet: FakeFleet, name: str, door: Door) -> None:
    fleet[name].state.scripts.push(ResponseScript(http_error="rate-limit", retry_after=2))
    url = fleet[name].url
    await fs.assert_outcome(Raises(RateLimitedError, retry_after=2.0), name, door, url, MESSAGES)
    await fs.assert_outcome(Text("You said: hi"), name, door, url, MESSAGES)


# -- transport faults ----------------------------------------------------------------------------

SHORT = "ok ✓ done"
#: Deadline for the cases that must end by a timeout: short, but far above loopback latency.
TIMEOUT = 0.3


def _fault(fault: Fault, text: str = SHORT) -> ResponseScript:
    return ResponseScript(text=text, fault=fault)


FAULT_CASES = {
    # The connection was established, then reset or answered with garbage: the reply is what
    # broke, so StreamResetError on both doors of every adapter, whether or not a status line
    # had arrived. ConnectError is only for a connection that never opened (refused, DNS,
    # connect timeout); see the providers/transport_errors.py docstring. Garbage must not
    # become UpstreamHTTPError either: aiohttp's "Bad status line" 400 was never sent.
    "reset-before-headers": Case(
        _fault(Fault("reset-before-headers")), _same(Raises(StreamResetError))
    ),
    "random-bytes": Case(
        _fault(Fault("random-bytes", size=64, seed=3)), _same(Raises(StreamResetError))
    ),
    "reset-after-5-bytes": Case(
        _fault(Fault("reset-after", after_bytes=5)), _same(Raises(StreamResetError))
    ),
    "empty": Case(
        _fault(Fault("empty")), _by_kind(Text(""), Raises(TruncatedStreamError, partial=""))
    ),
    "malformed-chunked-after-5-bytes": Case(
        _fault(Fault("malformed-chunked", after_bytes=5)),
        _same(Raises(StreamResetError)),
        deadline=TIMEOUT,
    ),
    "malformed-chunked-at-once": Case(
        _fault(Fault("malformed-chunked", after_bytes=0)),
        _same(Raises(StreamResetError)),
        deadline=TIMEOUT,
    ),
    # A raw stream has no end marker: a cut can only show as chunked framing without its end.
    "truncate-after-5-bytes": Case(
        _fault(Fault("truncate", after_bytes=5)), _same(Raises(StreamResetError))
    ),
    "truncate-after-0-bytes": Case(
        _fault(Fault("truncate", after_bytes=0)), _same(Raises(StreamResetError))
    ),
    "stall-past-the-deadline": Case(
        _fault(Fault("stall", after_bytes=5, seconds=3.0)),
        _same(Raises(UpstreamTimeoutError)),
        deadline=TIMEOUT,
    ),
    # A stall that ends in a close without the last chunk is a cut stream.
    "stall-then-close": Case(
        _fault(Fault("stall", after_bytes=5, seconds=0.05)), _same(Raises(StreamResetError))
    ),
    "slow-drip": Case(_fault(Fault("slow-drip", interval=0.0005), text="ok"), _same(Text("ok"))),
    "slow-drip-past-the-deadline": Case(
        _fault(Fault("slow-drip", interval=0.03), text="drip " * 10),
        _same(Raises(UpstreamTimeoutError)),
        deadline=0.25,
    ),
    "slow-close": Case(_fault(Fault("slow-close", seconds=0.05)), _same(Text(SHORT))),
    # SSE adapters return at [DONE]; raw ones must wait for the end of the body.
    "slow-close-past-the-deadline": Case(
        _fault(Fault("slow-close", seconds=3.0)),
        _by_kind(Raises(UpstreamTimeoutError), Text(SHORT)),
        deadline=TIMEOUT,
    ),
    "first-byte-latency": Case(
        ResponseScript(text=SHORT, first_byte_delay=0.05), _same(Text(SHORT))
    ),
    "first-byte-past-the-deadline": Case(
        ResponseScript(text=SHORT, first_byte_delay=3.0),
        _same(Raises(UpstreamTimeoutError)),
        deadline=0.3,
    ),
    "chunk-delays": Case(
        ResponseScript(text=SHORT, chunk_delay=0.005, chunk_delays=(0.03,)), _same(Text(SHORT))
    ),
}


@pytest.mark.parametrize(("case", "name", "door"), _params(FAULT_CASES))
async def test_fault(fleet: FakeFleet, case: Case, name: str, door: Door) -> None:
    await _check(fleet, case, name, door)


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("name", NAMES)
async def test_total_deadline_ends_a_drip_that_never_trips_the_read_timeout(
    fleet: FakeFleet, name: str, door: Door
) -> None:
    # A byte every 30 ms never lets the 5 s read timeout fire: only the total deadline can end
    # this call, and it must do so on time (the table above sets every deadline to the same
    # value, so it cannot tell which one ended a call).
    fleet[name].state.scripts.replace(
        default=_fault(Fault("slow-drip", interval=0.03), text="drip " * 100)
    )
    timeouts = Timeouts(connect=5.0, read=5.0, total=TIMEOUT)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeoutError):
        await fs.call(name, door, fleet[name].url, MESSAGES, timeout=timeouts)
    elapsed = time.monotonic() - started
    assert elapsed < TIMEOUT + fs.DEADLINE_SLACK, f"took {elapsed:.2f} s (total {TIMEOUT:g} s)"


@pytest.mark.parametrize("name", fs.REQUESTS_BASED)
async def test_total_deadline_ends_a_drip_between_two_bytes(fleet: FakeFleet, name: str) -> None:
    # A byte every 0.9 s with a total deadline of 1 s: the second byte comes in time, the third
    # would come at 1.8 s, before the (capped) read timeout fires. requests alone would wait for
    # it; the call must end at the total deadline instead, as the aiohttp adapters do.
    total = 1.0
    fleet[name].state.scripts.replace(
        default=_fault(Fault("slow-drip", interval=0.9), text="drip " * 10)
    )
    started = time.monotonic()
    with pytest.raises(UpstreamTimeoutError, match="total deadline of 1 s"):
        await fs.call(name, "sync", fleet[name].url, MESSAGES, timeout=Timeouts(5, 5, total))
    elapsed = time.monotonic() - started
    assert elapsed < total + 0.6, f"took {elapsed:.2f} s (total {total:g} s)"


def test_the_tables_cover_every_plan_fault_error_and_framing_option() -> None:
    # A new kind in the fakes must get a documented outcome here before this passes again.
    assert {plan.kind for plan in PLANS.values()} == set(CHUNK_KINDS)
    faults = {case.script.fault.kind for case in FAULT_CASES.values() if case.script.fault}
    assert faults == set(FAULT_KINDS)
    assert {case.script.http_error for case in HTTP_ERROR_CASES.values()} == set(HTTP_ERROR_KINDS)
    framings = [case.script.framing for case in FRAMING_CASES.values()]
    assert {framing.done for framing in framings} == set(DONE_MODES)
    default = Framing()
    for option in dataclasses.fields(Framing):
        changed = [f for f in framings if getattr(f, option.name) != getattr(default, option.name)]
        assert changed, f"no framing case sets {option.name}"


# -- a slow reader must still get every byte the server sent -------------------------------------

AIOHTTP_DROPS_BUFFERED_DATA_BUG = (
    "aiohttp's StreamReader.readchunk (streams.py, `if self._exception is not None: raise`) "
    "raises the payload error as soon as the connection closes, before handing over chunks it "
    "already received, so a reader slower than the network loses the end of the reply; with a "
    "fast reader the outcome is a race (seen: CodeLinkAva's sync door 56 of 60 runs "
    "StreamResetError, its async door 60 of 60 the text)"
)
SLOW_CASE_BUGS = dict.fromkeys(fs.AIOHTTP_BASED, AIOHTTP_DROPS_BUFFERED_DATA_BUG)


def _slowly_sync(name: str, url: str) -> tuple[list[str], TapedeckError | None]:
    pieces: list[str] = []
    try:
        for piece in fs.provider(name).create_completion("", MESSAGES, base_url=url, timeout=5):
            pieces.append(piece)
            time.sleep(0.05)
    except TapedeckError as error:
        return pieces, error
    return pieces, None


async def _slowly(name: str, door: Door, url: str) -> tuple[list[str], TapedeckError | None]:
    """Read one reply, pausing between pieces; the pieces and the error that ended it, if any."""
    if door == "sync":
        return _slowly_sync(name, url)
    pieces: list[str] = []
    try:
        agen = fs.provider(name).create_async_generator("", MESSAGES, base_url=url, timeout=5)
        async for piece in agen:
            pieces.append(piece)
            await asyncio.sleep(0.05)
    except TapedeckError as error:
        return pieces, error
    return pieces, None


@pytest.mark.parametrize(
    ("name", "door"),
    [
        pytest.param(
            name,
            door,
            id=f"{name}-{door}",
            marks=[pytest.mark.xfail(strict=True, reason=SLOW_CASE_BUGS[name])]
            if name in SLOW_CASE_BUGS
            else [],
        )
        for name in NAMES
        for door in DOORS
    ],
)
async def test_slow_reader_of_a_reply_cut_after_its_last_byte(
    fleet: FakeFleet, name: str, door: Door
) -> None:
    # Everything is sent (for SSE, [DONE] included), then the connection closes without the
    # terminating chunk.
    fleet[name].state.scripts.replace(
        default=_fault(Fault("truncate", after_bytes=10**6), text="one two three")
    )
    pieces, error = await _slowly(name, door, fleet[name].url)
    assert pieces == ["one ", "two ", "three"]
    if name in SSE:
        assert error is None  # [DONE] arrived: the answer is complete
    else:
        assert type(error) is StreamResetError  # no end marker: the cut is all there is


# -- resetting a fake while a reply is still running --------------------------------------------


def test_reset_while_a_reply_runs_leaves_the_new_journal_alone(fleet: FakeFleet) -> None:
    server = fleet["Aivvm"]
    server.state.scripts.replace(default=_fault(Fault("slow-close", seconds=0.3), text="old"))
    old = fs.provider("Aivvm").create_completion("", MESSAGES, base_url=server.url, timeout=5)
    assert next(old) == "old"  # the old reply is now in its slow close
    server.state.reset()
    assert list(fs.provider("Aivvm").create_completion("", MESSAGES, base_url=server.url)) == [
        "You ",
        "said: ",
        "hi",
    ]
    assert list(old) == []  # the old reply ends: its handler updates the journal now...
    time.sleep(0.2)  # ...just after its last byte went out, so give it time to do so
    fs.settle(server)
    entries = server.state.journal.entries
    assert [(e.outcome, e.script) for e in entries] == [("completed", server.state.scripts.default)]
    assert server.state.journal.errors == []
