"""The README's pytest examples run as written, so the newcomer's first copy-paste works."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

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
