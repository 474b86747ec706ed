"""The plan cache changes no output: a cached plan is exactly the plan built afresh.

Plans are compared by ``repr`` as well as ``==``, so a value of another type that compares equal
(``1`` and ``True``, ``0`` and ``0.0``) would still count as a difference.
"""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fake_upstreams.chunking import ChunkPlan
from fake_upstreams.reply import PlanCache, PlannedReply, build_reply
from fake_upstreams.script import ResponseScript
from providers.wire.common import ChatRequest, UpstreamCodec
from providers.wire.getgpt import CODEC as GETGPT
from tests._dummy_codec import CODEC, DummyCodec
from tests.test_fake_script import scripts

_messages = st.lists(
    st.builds(
        lambda role, text: {"role": role, "content": text},
        st.sampled_from(["user", "system", "assistant"]),
        st.sampled_from(["hi", "bye", ""]) | st.text(max_size=20),
    ),
    max_size=3,
)
chats = st.builds(lambda messages: ChatRequest("dummy-1", tuple(messages)), _messages)
#: The echo script (the one plan that depends on the request) shows up often.
ECHO = ResponseScript()
codecs = st.sampled_from([CODEC, GETGPT])


def _outcome(plan: object, *args: object) -> str:
    """The plan's repr, or the exception it raised (type and message)."""
    try:
        reply = plan(*args)  # type: ignore[operator]
    except (ValueError, UnicodeError) as error:
        return f"raised {type(error).__name__}: {error}"
    assert isinstance(reply, PlannedReply)
    return repr(reply)


@given(
    calls=st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 2), codecs), min_size=1, max_size=12
    ),
    script_pool=st.lists(st.just(ECHO) | scripts(), min_size=3, max_size=3),
    chat_pool=st.lists(chats, min_size=3, max_size=3),
    max_entries=st.integers(0, 4),
)
def test_cached_plans_equal_fresh_plans(
    calls: list[tuple[int, int, UpstreamCodec]],
    script_pool: list[ResponseScript],
    chat_pool: list[ChatRequest],
    max_entries: int,
) -> None:
    cache = PlanCache(max_entries=max_entries)
    for script_index, chat_index, codec in calls:
        args = (script_pool[script_index], codec, chat_pool[chat_index])
        assert _outcome(cache.plan, *args) == _outcome(build_reply, *args)
        assert len(cache) <= max_entries


def test_a_repeated_plan_comes_from_the_cache() -> None:
    cache = PlanCache()
    script = ResponseScript(text="a b c")
    chat = ChatRequest("dummy-1", ({"role": "user", "content": "x"},))
    first = cache.plan(script, CODEC, chat)
    other_chat = ChatRequest("dummy-1", ({"role": "user", "content": "y"},))
    assert cache.plan(script, CODEC, other_chat) is first  # the text does not echo the request
    assert len(cache) == 1


def test_the_echo_reply_is_cached_per_last_user_message() -> None:
    cache = PlanCache()
    script = ResponseScript()
    hi = ChatRequest("dummy-1", ({"role": "user", "content": "hi"},))
    bye = ChatRequest("dummy-1", ({"role": "user", "content": "bye"},))
    assert b"hi" in cache.plan(script, CODEC, hi).body
    assert b"bye" in cache.plan(script, CODEC, bye).body
    assert cache.plan(script, CODEC, hi) is cache.plan(script, CODEC, hi)
    assert len(cache) == 2


def test_equal_scripts_of_other_value_types_get_their_own_plans() -> None:
    cache = PlanCache()
    as_int = ResponseScript(http_error="rate-limit", retry_after=1)
    as_bool = ResponseScript(http_error="rate-limit", retry_after=True)
    assert as_int == as_bool  # why the cache keys on identity
    assert ("Retry-After", "1") in cache.plan(as_int, CODEC, ChatRequest("", ())).headers
    assert ("Retry-After", "True") in cache.plan(as_bool, CODEC, ChatRequest("", ())).headers


def test_codecs_never_share_plans() -> None:
    class CreatedCodec(DummyCodec):
        success_status = 201

    cache = PlanCache()
    script = ResponseScript(text="same")
    chat = ChatRequest("", ())
    assert cache.plan(script, CODEC, chat).status == 200
    assert cache.plan(script, CreatedCodec(), chat).status == 201


def test_bytes_bound_evicts_the_least_recently_used_and_skips_oversized_plans() -> None:
    cache = PlanCache(max_entries=10, max_bytes=100)
    chat = ChatRequest("", ())
    small = [ResponseScript(raw=(bytes([65 + i]) * 40,)) for i in range(3)]
    first = cache.plan(small[0], CODEC, chat)
    cache.plan(small[1], CODEC, chat)
    assert cache.plan(small[0], CODEC, chat) is first  # now the most recently used
    cache.plan(small[2], CODEC, chat)  # 120 bytes would be held: small[1] goes
    assert len(cache) == 2
    assert cache.plan(small[0], CODEC, chat) is first
    huge = ResponseScript(raw=(b"x" * 101,))
    assert cache.plan(huge, CODEC, chat).body == b"x" * 101
    assert len(cache) == 2


def test_errors_are_not_cached_and_raise_every_time() -> None:
    cache = PlanCache()
    script = ResponseScript(text="ab", chunking=ChunkPlan.at([500]))
    for _ in range(2):
        with pytest.raises(ValueError, match="not inside the body"):
            cache.plan(script, CODEC, ChatRequest("", ()))
    assert len(cache) == 0


def test_threads_sharing_a_cache_get_the_right_plans() -> None:
    cache = PlanCache(max_entries=3)
    script = ResponseScript()
    chats = [ChatRequest("", ({"role": "user", "content": f"n{n}"},)) for n in range(8)]
    expected = [build_reply(script, CODEC, chat) for chat in chats]
    wrong: list[int] = []

    def worker(offset: int) -> None:
        for step in range(400):
            n = (step + offset) % len(chats)
            if cache.plan(script, CODEC, chats[n]) != expected[n]:
                wrong.append(n)

    threads = [threading.Thread(target=worker, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
    assert len(cache) <= 3
