"""The README's pytest examples run as written, so the newcomer's first copy-paste works."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from fake_upstreams.registry import build_fleet

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
TEST_BLOCKS = [
    block for block in re.findall(r"```python\n(.*?)```", README, re.S) if "def test_" in block
]


def test_the_readme_has_pytest_examples() -> None:
    assert len(TEST_BLOCKS) >= 2


@pytest.mark.parametrize("block", TEST_BLOCKS, ids=lambda b: re.findall(r"def (test_\w+)", b)[0])
def test_readme_example_passes(pytester: pytest.Pytester, block: str) -> None:
    # Relative cassette paths in the examples are relative to the project root.
    shutil.copytree(ROOT / "cassettes" / "library", pytester.path / "cassettes" / "library")
    pytester.makepyfile(test_example=block)
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function"
    )
    result.assert_outcomes(passed=len(re.findall(r"^def test_", block, re.M)))


def test_the_tour_snippet_reaches_all_four_fakes(capsys: pytest.CaptureFixture[str]) -> None:
    """The "develop an adapter" snippet, against fakes on free ports instead of 8101-8104."""
    (snippet,) = [
        block
        for block in re.findall(r"```python\n(.*?)```", README, re.S)
        if "asyncio.run(main())" in block
    ]
    with build_fleet(("Aivvm", "AI365VIP", "GetGpt", "CodeLinkAva")) as fleet:
        for name, port in (
            ("Aivvm", 8101),
            ("AI365VIP", 8102),
            ("GetGpt", 8103),
            ("CodeLinkAva", 8104),
        ):
            snippet = snippet.replace(f"http://127.0.0.1:{port}", fleet[name].url)
        exec(compile(snippet, "README.md", "exec"), {"__name__": "readme"})
        served = {name: len(fleet[name].state.journal.entries) for name in fleet}
    assert capsys.readouterr().out.count("You said: Привет!") == 4
    assert served == {"Aivvm": 1, "AI365VIP": 1, "GetGpt": 1, "CodeLinkAva": 1}
