"""Unmodified requests/aiohttp code aimed at the real hosts reaches the fakes, only while routed.

The client code here is written the way the originals were (``requests.post(url, json=...)``,
``aiohttp.ClientSession().post(url, json=...)``), with the real https URLs; nothing points it at
the fakes except :func:`route_real_hosts`.
"""

from __future__ import annotations

import json

import aiohttp
import pytest
import requests

from fake_upstreams.handles import FakeUpstreams
from fake_upstreams.routing import active_routes, route_real_hosts, routes_for
from providers import PROVIDERS, Provider
from tests.fakes_support import REAL_HOST

MESSAGES = [{"role": "user", "content": "Route me"}]
AIVVM_BODY = {
    "model": {"id": "gpt-3.5-turbo", "name": "GPT-3.5"},
    "messages": MESSAGES,
    "key": "",
    "prompt": "Be brief.",
    "temperature": 0.7,
}
CODELINK_BODY = {"messages": MESSAGES, "temperature": 0.6, "stream": True}


def test_requests_post_to_the_real_host_reaches_the_fake(routed_upstreams: FakeUpstreams) -> None:
    fake = routed_upstreams["Aivvm"]
    fake.strictness = "lenient"
    fake.script(text="routed ok")
    url = "https://chat.aivvm.com/api/chat?trace=1"
    reply = requests.post(url, json=AIVVM_BODY, timeout=5)
    assert reply.status_code == 200
    assert reply.text == "routed ok"
    assert reply.url == url  # the caller still sees the URL it asked for
    assert reply.request.url == url
    [entry] = fake.journal
    assert (entry.method, entry.path) == ("POST", "/api/chat?trace=1")
    assert entry.header("Host") == "chat.aivvm.com"
    assert entry.body == json.dumps(AIVVM_BODY).encode()
    assert entry.verdict is not None
    assert entry.verdict.ok


async def test_aiohttp_post_to_the_real_host_reaches_the_fake(
    routed_upstreams: FakeUpstreams,
) -> None:
    fake = routed_upstreams["CodeLinkAva"]
    fake.strictness = "lenient"
    fake.script(pieces=["a", "b"])
    url = "https://ava-alpha-api.codelink.io/api/chat"
    async with aiohttp.ClientSession() as session, session.post(url, json=CODELINK_BODY) as reply:
        body = await reply.read()
        assert reply.status == 200
        assert str(reply.url) == url
    assert body.count(b"data: ") == 3  # two pieces and [DONE]
    [entry] = fake.journal
    assert entry.path == "/api/chat"
    assert entry.header("Host") == "ava-alpha-api.codelink.io"
    assert json.loads(entry.body) == CODELINK_BODY


async def test_aiohttp_session_with_a_base_url_is_routed(routed_upstreams: FakeUpstreams) -> None:
    fake = routed_upstreams["AI365VIP"]
    fake.strictness = "lenient"
    body = {"model": {"id": "gpt-3.5-turbo-16k"}, "messages": MESSAGES, "key": "", "prompt": "x"}
    async with (
        aiohttp.ClientSession(base_url="https://chat.ai365vip.com") as session,
        session.post("/api/chat", json=body) as reply,
    ):
        await reply.read()
    assert [entry.header("Host") for entry in fake.journal] == ["chat.ai365vip.com"]


@pytest.mark.parametrize("door", ["sync", "async"])
@pytest.mark.parametrize("name", list(PROVIDERS))
async def test_adapters_without_base_url_reach_their_fake(
    routed_upstreams: FakeUpstreams, name: str, door: str
) -> None:
    provider: type[Provider] = PROVIDERS[name]
    fake = routed_upstreams[name]
    fake.script(text=f"Hi from fake {name}")
    if door == "sync":
        text = "".join(provider.create_completion("", MESSAGES, timeout=5))
    else:
        text = "".join([p async for p in provider.create_async_generator("", MESSAGES, timeout=5)])
    assert text == f"Hi from fake {name}"
    [entry] = fake.journal
    assert entry.header("Host") == REAL_HOST[name]
    assert entry.verdict is not None
    assert entry.verdict.ok  # strict mode: exactly the original's request
    others = [other for other in routed_upstreams if other != name]
    assert all(routed_upstreams[other].journal == [] for other in others)


def test_sessions_made_before_the_context_are_routed_for_requests(
    fake_upstreams: FakeUpstreams,
) -> None:
    fake = fake_upstreams["Aivvm"]
    fake.strictness = "lenient"
    with requests.Session() as session:
        normal = session.get_adapter("https://chat.aivvm.com/api/chat")
        with route_real_hosts(fake_upstreams):
            reply = session.post("https://chat.aivvm.com/api/chat", json=AIVVM_BODY, timeout=5)
            assert reply.status_code == 200
        assert session.get_adapter("https://chat.aivvm.com/api/chat") is normal
    assert len(fake.journal) == 1


def test_other_hosts_are_left_alone(fake_upstreams: FakeUpstreams) -> None:
    getgpt = fake_upstreams["GetGpt"]
    with route_real_hosts(fake_upstreams), requests.Session() as session:
        for url in ("https://example.com/", "https://chat.aivvm.com.example.org/api/chat"):
            assert session.get_adapter(url) is session.adapters["https://"]
        # A loopback URL that is not a real host goes exactly where it was sent.
        reply = session.get(getgpt.url + "/__tapedeck__/journal", timeout=5)
        assert reply.status_code == 200
        assert reply.url == getgpt.url + "/__tapedeck__/journal"


async def test_aiohttp_leaves_other_hosts_alone(fake_upstreams: FakeUpstreams) -> None:
    getgpt = fake_upstreams["GetGpt"]
    with route_real_hosts(fake_upstreams):
        async with (
            aiohttp.ClientSession() as session,
            session.get(getgpt.url + "/__tapedeck__/journal") as reply,
        ):
            assert reply.status == 200
            assert (await reply.json())["entries"] == []


def test_everything_is_restored_on_exit(fake_upstreams: FakeUpstreams) -> None:
    get_adapter = requests.Session.get_adapter
    session_init = aiohttp.ClientSession.__init__
    with route_real_hosts(fake_upstreams) as routes:
        assert requests.Session.get_adapter is not get_adapter
        assert aiohttp.ClientSession.__init__ is not session_init
        assert active_routes() == routes
    assert requests.Session.get_adapter is get_adapter
    assert aiohttp.ClientSession.__init__ is session_init
    assert active_routes() == {}


def test_contexts_nest_and_the_innermost_wins(fake_upstreams: FakeUpstreams) -> None:
    aivvm, getgpt = fake_upstreams["Aivvm"], fake_upstreams["GetGpt"]
    aivvm.strictness = getgpt.strictness = "lenient"
    url = "https://chat.aivvm.com/api/chat"
    with route_real_hosts(fake_upstreams):
        with route_real_hosts({"Aivvm": getgpt.url}):
            requests.post(url, json=AIVVM_BODY, timeout=5)
        requests.post(url, json=AIVVM_BODY, timeout=5)
        assert active_routes()["chat.aivvm.com"] == aivvm.url
    assert [e.path for e in getgpt.journal] == ["/api/chat"]  # GetGpt's fake: 404, but journaled
    assert [e.path for e in aivvm.journal] == ["/api/chat"]


def test_a_configured_proxy_is_not_used_for_routed_hosts(
    routed_upstreams: FakeUpstreams, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Port 9 (discard) on loopback: if the proxy were used, the request would fail.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    fake = routed_upstreams["Aivvm"]
    fake.strictness = "lenient"
    assert requests.post("https://chat.aivvm.com/api/chat", json=AIVVM_BODY, timeout=5).ok
    assert len(fake.journal) == 1


def test_routes_name_registered_fakes_only() -> None:
    assert routes_for({"getgpt": "http://127.0.0.1:1/"}) == {
        "chat.getgpt.world": "http://127.0.0.1:1"
    }
    with pytest.raises(KeyError, match="no fake named 'Nope'"):
        routes_for({"Nope": "http://127.0.0.1:1"})
    with pytest.raises(ValueError, match="no http"):
        routes_for({"Aivvm": "ftp://127.0.0.1:1"})
