"""Scenario files: what each fake answers, for ``tapedeck serve --scenario FILE``.

A scenario is a JSON or YAML object (YAML through ``yaml.safe_load``: no tags that build
objects). Each key names a fake (case-insensitive) or is ``"*"`` for every fake not named; each
value is what :meth:`ScriptQueue.load` takes — one script (the reply to every call), or
``{"queue": [script, ...], "default": script}`` (one script per call, then the default)::

    GetGpt:
      queue:
        - http_error: rate-limit         # call 1: 429 with Retry-After
      default: {text: "Hello again"}      # calls 2, 3, ...
    "*":
      chunking: utf8                      # every other fake: split inside every character

A mistake raises ``ValueError`` naming the file, the fake and the bad key, before any fake
starts. See ``fake_upstreams/scenarios/example.yaml``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import yaml

from fake_upstreams.app import FakeState
from fake_upstreams.registry import FAKES, spec_for
from fake_upstreams.script import ResponseScript
from fake_upstreams.specdict import SpecReader

EVERY_OTHER = "*"
EXAMPLE = Path(__file__).with_name("scenarios") / "example.yaml"


@dataclass(frozen=True, slots=True)
class FakePlan:
    """The scripts of one fake: ``queue`` for the first calls, then ``default`` (``None``: echo)."""

    queue: tuple[ResponseScript, ...] = ()
    default: ResponseScript | None = None

    def apply(self, state: FakeState) -> None:
        """Replace the fake's scripts with this plan (its journal is left alone)."""
        state.scripts.replace(self.queue, self.default)


@dataclass(frozen=True, slots=True)
class Scenario:
    """Plans per fake name (registry spelling); fakes not listed keep the default echo reply."""

    plans: Mapping[str, FakePlan]
    source: str = "<scenario>"

    def plan_for(self, name: str) -> FakePlan:
        return self.plans.get(spec_for(name).name, FakePlan())

    def apply(self, states: Mapping[str, FakeState]) -> None:
        """Load every fake's plan into its state (``states`` by registry name)."""
        for name, state in states.items():
            self.plan_for(name).apply(state)


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file (``.json`` as JSON, anything else as YAML)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"scenario {path}: cannot read it: {error}") from None
    is_json = path.suffix.lower() == ".json"
    try:
        # Both decoders recurse per nesting level in Python (yaml.safe_load is the pure-Python
        # loader, not libyaml's), so a file nested thousands deep ends in RecursionError, not a
        # crash; no scenario is more than a few levels deep.
        data = json.loads(text) if is_json else yaml.safe_load(text)
    except RecursionError:
        raise ValueError(f"scenario {path}: nested too deeply to be a scenario") from None
    except yaml.YAMLError as error:
        raise ValueError(f"scenario {path}: not valid YAML{_yaml_problem(error)}") from None
    except ValueError as error:  # JSONDecodeError (with line and column), or a YAML value
        language = "JSON" if is_json else "YAML"  # such as the date 2024-13-45
        raise ValueError(f"scenario {path}: not valid {language}: {error}") from None
    return parse_scenario(data, source=str(path))


def _yaml_problem(error: yaml.YAMLError) -> str:
    """What PyYAML says, on one line: `` at line L, column C: problem``.

    PyYAML's own text spans several lines (it quotes the offending line with a caret), which
    does not fit a one-line error.
    """
    if not isinstance(error, yaml.MarkedYAMLError):
        return f": {' '.join(str(error).split())}"
    mark = error.problem_mark or error.context_mark
    where = "" if mark is None else f" at line {mark.line + 1}, column {mark.column + 1}"
    what = "; ".join(part for part in (error.context, error.problem) if part)
    if isinstance(error, yaml.constructor.ConstructorError):
        what += " (a scenario is plain data: no tags that build objects)"
    return f"{where}: {' '.join(what.split())}"


def parse_scenario(data: object, *, source: str = "<scenario>") -> Scenario:
    """Check already-decoded scenario data; ``source`` names it in error messages."""
    if not isinstance(data, Mapping):
        raise ValueError(
            f"scenario {source}: must be an object keyed by fake name, got {type(data).__name__}"
        )
    named: dict[str, FakePlan] = {}
    fallback: FakePlan | None = None
    for key, value in data.items():
        if key == EVERY_OTHER:
            fallback = _plan(value, source, EVERY_OTHER)
            continue
        try:
            name = spec_for(str(key)).name
        except KeyError:
            raise ValueError(
                f"scenario {source}: no fake named {key!r} "
                f"(choose from {', '.join(FAKES)}, or {EVERY_OTHER!r} for every other fake)"
            ) from None
        if name in named:
            raise ValueError(f"scenario {source}: fake {name} is given twice")
        named[name] = _plan(value, source, name)
    if fallback is not None:
        for name in FAKES:
            named.setdefault(name, fallback)
    return Scenario(MappingProxyType(named), source)


def _plan(value: object, source: str, fake: str) -> FakePlan:
    where = f"scenario {source}: fake {fake}"
    if isinstance(value, Mapping) and ("queue" in value or "default" in value):
        try:
            reader = SpecReader(value, "script queue", known=("queue", "default"))
            items = reader.items("queue") or []
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
        queue = tuple(_script(item, f"{where}: queue[{i}]") for i, item in enumerate(items))
        default = value.get("default")
        return FakePlan(queue, None if default is None else _script(default, f"{where}: default"))
    return FakePlan((), _script(value, where))


def _script(value: object, where: str) -> ResponseScript:
    try:
        # load(), as a fake's script endpoint does: a script no fake could send (a 204 with a
        # body, a header with a line break) is refused when the file is read, not mid-test.
        return ResponseScript.load(value)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
