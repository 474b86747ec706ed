"""The pytest plugin, seen from a user's fresh test files (pytester), plus the handle API."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests

from fake_upstreams.chunking import ChunkPlan
from fake_upstreams.handles import FakeHandle, FakeUpstreams, check_strictness, to_script
from fake_upstreams.script import ResponseScript
from providers.errors import FakeUpstreamError
from providers.wire.common import Framing
from tests.fakes_support import NAMES

pytest_plugins = ["pytester"]

HEADER = """
import json
import pytest
import requests
from providers import AI365VIP, Aivvm, CodeLinkAva, GetGpt

HI = [{"role": "user", "content": "hi"}]
AIVVM_BODY = {
    "model": {"id": "gpt-4", "name": "GPT-4"},
    "messages": HI,
    "key": "",
    "prompt": "p",
    "temperature": 0.7,
}
"""


@pytest.fixture
def user_tests(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    return pytester


def run(pytester: pytest.Pytester, body: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_user=HEADER + body)
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def test_fixtures_work_in_a_fresh_test_file(user_tests: pytest.Pytester) -> None:
    result = run(
        user_tests,
        """
def test_all_four(fake_aivvm, fake_ai365vip, fake_getgpt, fake_codelinkava, fake_upstreams):
    handles = [fake_aivvm, fake_ai365vip, fake_getgpt, fake_codelinkava]
    assert [fake_upstreams[name] for name in fake_upstreams][:4] == handles
    assert len({handle.url for handle in handles}) == 4
    assert all(handle.url.startswith("http://127.0.0.1:") for handle in handles)

def test_readme_example(fake_getgpt):
    fake_getgpt.script(pieces=["Hello", " world"], chunking={"kind": "every", "size": 3})
    text = "".join(GetGpt.create_completion("", HI, base_url=fake_getgpt.url))
    assert text == "Hello world"
    assert json.loads(fake_getgpt.journal[-1].plaintext)["messages"] == HI

async def test_async_door(fake_codelinkava, fake_ai365vip):
    fake_codelinkava.queue({"text": "first"})
    url = fake_codelinkava.url
    got = [p async for p in CodeLinkAva.create_async_generator("", HI, base_url=url)]
    assert "".join(got) == "first"
    got = [p async for p in AI365VIP.create_async_generator("", HI, base_url=fake_ai365vip.url)]
    assert "".join(got) == "You said: hi"
""",
    )
    result.assert_outcomes(passed=3)


def test_fakes_are_reset_between_tests(user_tests: pytest.Pytester) -> None:
    result = run(
        user_tests,
        """
SEEN = {}

def test_first(fake_aivvm):
    SEEN["url"] = fake_aivvm.url
    fake_aivvm.script(text="scripted")
    fake_aivvm.queue({"http_error": "rate-limit"}, {"http_error": "server-error"})
    fake_aivvm.strictness = "lenient"
    assert requests.post(fake_aivvm.url + "/api/chat", json=AIVVM_BODY).status_code == 429
    assert len(fake_aivvm.journal) == 1

def test_second(fake_aivvm, fake_upstreams):
    assert fake_aivvm.url == SEEN["url"]  # the same server, started once per session
    assert fake_aivvm.journal == []
    assert fake_aivvm.strictness == "strict"
    assert fake_aivvm.state.scripts.pending == ()
    assert "".join(Aivvm.create_completion("", HI, base_url=fake_aivvm.url)) == "You said: hi"
    assert all(fake_upstreams[name].journal == [] for name in ("AI365VIP", "GetGpt"))
""",
    )
    result.assert_outcomes(passed=2)


HANDLER_ERRORS = """
def break_it(fake):
    fake.strictness = "lenient"
    fake.state.scripts.push("not a script")  # behind the handle's back: a harness bug
    return requests.post(fake.url + "/api/chat", json=AIVVM_BODY)

def test_breaks_the_fake(fake_aivvm):
    assert break_it(fake_aivvm).status_code == 500

def test_next_one_is_clean(fake_aivvm):
    assert fake_aivvm.state.journal.errors == []

def test_fails_itself_too(fake_aivvm):
    break_it(fake_aivvm)
    assert 1 == 2

@pytest.fixture
def breaks_at_teardown(fake_aivvm):
    yield
    break_it(fake_aivvm)

def test_teardown_request(breaks_at_teardown):
    pass
"""


def test_handler_errors_fail_the_test_that_caused_them(user_tests: pytest.Pytester) -> None:
    result = run(user_tests, HANDLER_ERRORS)
    result.assert_outcomes(passed=2, failed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "FAILED test_user.py::test_breaks_the_fake - *FakeUpstreamErr*",
            "FAILED test_user.py::test_fails_itself_too - assert 1 == 2",
            "ERROR test_user.py::test_teardown_request - *FakeUpstreamErr*",
        ]
    )
    output = result.stdout.str()
    assert "(in the Aivvm fake at http://127.0.0.1:" in output
    assert "Meanwhile, in a fake upstream:" in output
    assert "'str' object has no attribute" in output
    assert "1 error(s) inside the fake's handler" in output


@pytest.mark.parametrize(
    ("how", "expected"),
    [("default", "strict"), ("option", "lenient"), ("env", "lenient"), ("fixture", "lenient")],
)
def test_default_strictness_settings(
    user_tests: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, how: str, expected: str
) -> None:
    monkeypatch.delenv("TAPEDECK_STRICTNESS", raising=False)
    args: list[str] = []
    if how == "option":
        args.append("--tapedeck-lenient")
    elif how == "env":
        monkeypatch.setenv("TAPEDECK_STRICTNESS", "lenient")
    elif how == "fixture":
        user_tests.makeconftest(
            "import pytest\n\n@pytest.fixture\ndef tapedeck_strictness():\n    return 'lenient'\n"
        )
    body = f"""
def test_strictness(fake_upstreams, fake_getgpt):
    assert {{h.strictness for h in fake_upstreams.values()}} == {{{expected!r}}}
    fake_getgpt.strictness = "strict" if {expected!r} == "lenient" else "lenient"

def test_strictness_is_back(fake_getgpt):
    assert fake_getgpt.strictness == {expected!r}
"""
    run(user_tests, body, *args).assert_outcomes(passed=2)


def test_a_bad_strictness_in_the_environment_stops_the_run(
    user_tests: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAPEDECK_STRICTNESS", "loose")
    result = run(user_tests, "def test_x(): pass\n")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*TAPEDECK_STRICTNESS: strictness must be one of strict, lenient*"]
    )


def test_parallel_workers_each_get_their_own_fakes(user_tests: pytest.Pytester) -> None:
    body = "".join(
        f"""
def test_round_trip_{index}(fake_aivvm, fake_getgpt):
    fake_getgpt.script(text="worker {index}")
    assert "".join(GetGpt.create_completion("", HI, base_url=fake_getgpt.url)) == "worker {index}"
    assert len(fake_getgpt.journal) == 1
"""
        for index in range(8)
    )
    user_tests.makepyfile(test_user=HEADER + body)
    result = user_tests.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "-v")
    result.assert_outcomes(passed=8)
    result.stdout.re_match_lines([r"\[gw0\] .*PASSED"], consecutive=False)
    result.stdout.re_match_lines([r"\[gw1\] .*PASSED"], consecutive=False)


# --- the handle API, against the session's fleet ------------------------------------------------


def test_script_accepts_plain_or_typed_fields(fake_getgpt: FakeHandle) -> None:
    typed = fake_getgpt.script(
        text="x", chunking=ChunkPlan.every(2), framing=Framing(done="missing")
    )
    plain = to_script(
        {"text": "x", "chunking": {"kind": "every", "size": 2}, "framing": {"done": "missing"}}
    )
    assert typed == plain
    assert fake_getgpt.state.scripts.default == typed
    assert to_script({"raw": [b"\xff\x00"]}).raw == (b"\xff\x00",)
    assert fake_getgpt.script() == ResponseScript()


def test_script_keeps_queued_scripts_ahead(fake_getgpt: FakeHandle) -> None:
    first = fake_getgpt.queue({"http_error": "rate-limit"})
    fake_getgpt.script(text="later")
    assert fake_getgpt.state.scripts.pending == first
    assert fake_getgpt.state.scripts.next().http_error == "rate-limit"
    assert fake_getgpt.state.scripts.next().text == "later"


def test_bad_script_fields_name_the_key(fake_getgpt: FakeHandle) -> None:
    with pytest.raises(ValueError, match="unknown script key 'txt'"):
        fake_getgpt.script(txt="typo")
    with pytest.raises(TypeError, match="not both"):
        fake_getgpt.script(ResponseScript(), text="x")
    # A script no fake could send fails in the test that wrote it, typed or plain.
    with pytest.raises(ValueError, match="a control character HTTP forbids"):
        fake_getgpt.script(headers=[("X-A", "b\r\nX-Injected: 1")])
    with pytest.raises(ValueError, match="status 304 has no body"):
        fake_getgpt.queue(ResponseScript(status=304))
    with pytest.raises(ValueError, match="strictness must be one of strict, lenient"):
        fake_getgpt.strictness = "loose"  # type: ignore[assignment]
    assert check_strictness("lenient") == "lenient"


def test_mapping_is_case_insensitive(fake_upstreams: FakeUpstreams) -> None:
    assert fake_upstreams["getgpt"] is fake_upstreams["GetGpt"]
    assert list(fake_upstreams.urls) == list(NAMES)
    with pytest.raises(KeyError):
        fake_upstreams["Nope"]


def test_raise_new_errors_reports_each_error_once(fake_aivvm: FakeHandle) -> None:
    journal = fake_aivvm.state.journal
    index = journal.open("POST", "/api/chat", [], b"")
    journal.fail(index, RuntimeError("boom"))
    with pytest.raises(FakeUpstreamError, match="boom") as caught:
        fake_aivvm.raise_new_errors()
    assert any("Aivvm fake" in note for note in caught.value.__notes__)
    fake_aivvm.raise_new_errors()  # already reported: quiet
    fake_aivvm.reset()


def test_settle_waits_for_a_reply_still_running(fake_aivvm: FakeHandle) -> None:
    fake_aivvm.strictness = "lenient"
    fake_aivvm.script(text="late", first_byte_delay=0.3)
    messages = [{"role": "user", "content": "x"}]
    body: dict[str, Any] = {"model": {"id": "gpt-4"}, "messages": messages, "key": "", "prompt": ""}
    body["temperature"] = 0.7
    call = threading.Thread(
        target=requests.post, args=(fake_aivvm.url + "/api/chat",), kwargs={"json": body}
    )
    call.start()
    try:
        deadline = time.monotonic() + 5
        while not fake_aivvm.busy() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert fake_aivvm.busy()
        assert fake_aivvm.settle(timeout=0.01) is False
        assert fake_aivvm.settle(timeout=5) is True
        assert [entry.outcome for entry in fake_aivvm.journal] == ["completed"]
    finally:
        call.join(5)
