"""Scenario files: the shipped example drives real fakes; every mistake names file, fake and key."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fake_upstreams.handles import FakeUpstreams
from fake_upstreams.scenario import EXAMPLE, FakePlan, load_scenario, parse_scenario
from fake_upstreams.script import ResponseScript
from providers import AI365VIP, Aivvm, CodeLinkAva, GetGpt
from providers.errors import RateLimitedError, TruncatedStreamError

HI = [{"role": "user", "content": "hi"}]


def test_the_shipped_example_drives_the_fakes(fake_upstreams: FakeUpstreams) -> None:
    scenario = load_scenario(EXAMPLE)
    scenario.apply({name: handle.state for name, handle in fake_upstreams.items()})
    urls = fake_upstreams.urls

    with pytest.raises(RateLimitedError) as limited:
        list(GetGpt.create_completion("", HI, base_url=urls["GetGpt"], timeout=5))
    assert limited.value.retry_after == 2
    getgpt = GetGpt.create_completion("", HI, base_url=urls["GetGpt"], timeout=5)
    assert "".join(getgpt) == "Hello from the GetGpt fake"

    aivvm = Aivvm.create_completion("", HI, base_url=urls["Aivvm"], timeout=5)
    assert "".join(aivvm) == "Привет, мир! 👋"
    legacy = Aivvm.create_completion("", HI, base_url=urls["Aivvm"], timeout=5, decoding="legacy")
    assert "".join(legacy) != "Привет, мир! 👋"  # split inside characters: the original's bug

    with pytest.raises(TruncatedStreamError) as truncated:
        list(CodeLinkAva.create_completion("", HI, base_url=urls["CodeLinkAva"], timeout=5))
    assert truncated.value.partial == "Streaming without an end marker"

    vip = AI365VIP.create_completion("", HI, base_url=urls["AI365VIP"], timeout=5)
    assert "".join(vip) == "You said: hi"  # "*": echo, only slower
    assert fake_upstreams["AI365VIP"].journal[-1].script == ResponseScript(
        first_byte_delay=0.2, chunk_delay=0.05
    )


def test_json_files_and_every_other_fake(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"getgpt": {"text": "g"}, "*": {"status": 200}}))
    scenario = load_scenario(path)
    assert scenario.plan_for("GetGpt") == FakePlan((), ResponseScript(text="g"))
    for name in ("Aivvm", "AI365VIP", "CodeLinkAva"):
        assert scenario.plan_for(name) == FakePlan((), ResponseScript(status=200))
    assert parse_scenario({}).plan_for("Aivvm") == FakePlan()


BAD = [
    ([1, 2], "scenario S: must be an object keyed by fake name, got list"),
    ({"Nope": {}}, "scenario S: no fake named 'Nope' (choose from Aivvm, AI365VIP, GetGpt, "),
    ({"GetGpt": {"txt": "x"}}, "scenario S: fake GetGpt: unknown script key 'txt'"),
    ({"*": {"txt": "x"}}, "scenario S: fake *: unknown script key 'txt'"),
    (
        {"GetGpt": {"queue": [{}, {"status": "429"}]}},
        "scenario S: fake GetGpt: queue[1]: script key 'status' must be an integer, got '429'",
    ),
    (
        {"Aivvm": {"default": {"chunking": "bytes"}}},
        "scenario S: fake Aivvm: default: chunk plan key 'kind' must be one of whole, frames",
    ),
    (
        {"Aivvm": {"queue": {"text": "x"}}},
        "scenario S: fake Aivvm: script queue key 'queue' must be a list",
    ),
    (
        {"Aivvm": {"queue": [], "defualt": {}}},
        "scenario S: fake Aivvm: unknown script queue key 'defualt'",
    ),
    ({"Aivvm": "text"}, "scenario S: fake Aivvm: script must be an object (a dict), got str"),
    ({"aivvm": {}, "AIVVM": {}}, "scenario S: fake Aivvm is given twice"),
    (
        {"Aivvm": {"queue": [{"status": 204}]}},
        "scenario S: fake Aivvm: queue[0]: script status 204 has no body",
    ),
]


@pytest.mark.parametrize(("data", "message"), BAD)
def test_mistakes_name_the_file_the_fake_and_the_key(data: object, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        parse_scenario(data, source="S")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.yaml", "GetGpt: [unclosed", "not valid YAML"),
        ("bad.json", "{'single': 'quotes'}", "not valid JSON"),
        ("tagged.yaml", "GetGpt: !!python/object:os.system {}", "not valid YAML"),
        ("date.yaml", "GetGpt: {text: 2024-13-45}", "not valid YAML: month must be in 1..12"),
        ("latin1.yaml", None, "cannot read it"),
    ],
)
def test_unreadable_files_are_named(
    tmp_path: Path, name: str, content: str | None, message: str
) -> None:
    path = tmp_path / name
    if content is None:
        path.write_bytes(b"GetGpt: {text: \xe9}")
    else:
        path.write_text(content)
    with pytest.raises(ValueError, match=f"^scenario {path}: {message}"):
        load_scenario(path)
    with pytest.raises(ValueError, match="cannot read it"):
        load_scenario(tmp_path / "missing.yaml")
