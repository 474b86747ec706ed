"""Suite-wide settings: Hypothesis profiles and the offline guard.

The guard is switched on before any test module is imported and stays on for the whole run, so
nothing in the suite can reach beyond loopback. A test that tries fails even if the code under
test swallowed the error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager

import pytest
from hypothesis import HealthCheck, settings

from fake_upstreams.offline import offline_guard

# "dev" explores more on a developer's machine; "ci" keeps the whole suite within minutes on two
# cores and is derandomised so a red CI run can be reproduced exactly.
settings.register_profile(
    "dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

_VIOLATIONS: list[str] = []
_GUARD: AbstractContextManager[list[str]] = offline_guard(_VIOLATIONS)


def pytest_configure(config: pytest.Config) -> None:
    _GUARD.__enter__()


def pytest_unconfigure(config: pytest.Config) -> None:
    _GUARD.__exit__(None, None, None)


@pytest.fixture(autouse=True)
def _no_network_attempts() -> Iterator[None]:
    """Fail any test during which the offline guard refused something, caught or not."""
    before = len(_VIOLATIONS)
    yield
    attempts = _VIOLATIONS[before:]
    if attempts:
        pytest.fail("network access attempted:\n" + "\n".join(attempts), pytrace=False)


@pytest.fixture
def offline_violations() -> list[str]:
    """The live list of refused attempts (for tests of the guard itself)."""
    return _VIOLATIONS
