"""Regenerate the shipped cassettes (``cassettes/library/``) from the fakes, through the proxy.

    python -m tools.make_library [--recorded-at 2024-05-01T12:00:00Z|now] [DIRECTORY]

The real sites are gone, so every shipped cassette is a recording of a local fake: each entry of
:data:`LIBRARY` scripts a fake (:class:`~fake_upstreams.script.ResponseScript`), makes the
adapter's real call through a :class:`~cassettes.proxy.RecordingProxy`, checks the adapter got the
expected text or error, and keeps the cassette. Provenance says ``source: fake`` and a target of
``http://127.0.0.1:0`` (a fake on an ephemeral port); request URIs are written with the real API
base (``--record-as``), so plain vcrpy replays a call made without ``base_url``.

The content is deterministic, so regenerating gives byte-identical files when the date is pinned:

- GetGpt's key, IV and UUID come from a seeded generator (they still differ between calls, which
  is why replaying GetGpt needs the decrypting matcher);
- the ``Date`` response header is the recording date;
- chunk offsets are the fake's scripted schedule (``first_byte_delay``, then each chunk's delay)
  instead of the measured loopback times, which differ by fractions of a millisecond per run;
- a body sent with ``Content-Length`` (the error page) is one chunk: it has no chunk boundaries,
  only TCP reads, which vary.

``expected.json`` and ``README.md`` beside the cassettes are written from the same table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from cassettes import yamlio
from cassettes.model import Chunk, Interaction, RecordedResponse
from cassettes.proxy import RecordingProxy
from cassettes.recorder import Recorder
from fake_upstreams.registry import build_server
from fake_upstreams.script import ResponseScript
from providers import Provider
from providers.errors import CassetteError, TapedeckError
from tools.library_table import LIBRARY, Call, Entry, pinned_provider

LIBRARY_DIR = Path(__file__).resolve().parent.parent / "cassettes" / "library"
#: Where the fakes listen, as the provenance states it: loopback, an ephemeral port.
FAKE_TARGET = "http://127.0.0.1:0"


def make_library(
    directory: str | Path = LIBRARY_DIR, *, recorded_at: str | None = None
) -> list[Path]:
    """Record every entry of :data:`LIBRARY` into ``directory``; returns the files written.

    ``recorded_at`` (ISO 8601 UTC, e.g. ``2024-05-01T12:00:00Z``, or ``now``) pins the
    recording date; default: the date of the cassettes already in ``directory``, so that
    adding an entry leaves the others byte-identical, else now. Raises :class:`CassetteError`
    when an adapter's result differs from the table.
    """
    directory = Path(directory)
    if recorded_at is None:
        recorded_at = _existing_date(directory)
    if recorded_at is None or recorded_at == "now":
        recorded_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    stamp = recorded_at
    written = []
    with tempfile.TemporaryDirectory(prefix="tapedeck-library-") as scratch:
        for entry in LIBRARY:
            recording = Path(scratch) / entry.file
            asyncio.run(_record_entry(entry, recording, stamp))
            target = directory / entry.file
            yamlio.write_atomic(target, recording.read_bytes())
            written.append(target)
    expected = directory / "expected.json"
    yamlio.write_atomic(expected, expected_json().encode("utf-8"))
    readme = directory / "README.md"
    yamlio.write_atomic(readme, readme_text().encode("utf-8"))
    return [*written, expected, readme]


async def _record_entry(entry: Entry, path: Path, stamp: str) -> None:
    provider = pinned_provider(entry.provider, seed=entry.file)
    async with build_server(entry.provider) as fake:
        fake.state.scripts.push(*(call.script for call in entry.calls))
        recorder = Recorder(
            path,
            target_url=FAKE_TARGET,
            source="fake",
            mode="all",
            recorded_at=stamp,
            before_record=_pinner(entry, stamp),
        )
        base = provider.codec.api_base
        async with RecordingProxy(recorder, fake.url, record_as=base) as proxy:
            for number, call in enumerate(entry.calls):
                # The adapter's own synchronous door, as a user would call it (async providers
                # bridge to their aiohttp code); a thread keeps this loop serving meanwhile.
                got = await asyncio.to_thread(_call, provider, call, proxy.url)
                _check(entry, number, call, got)
    if len(yamlio.load(path)) != len(entry.calls):
        raise CassetteError(f"{entry.file}: expected {len(entry.calls)} recorded interactions")


def _call(provider: type[Provider], call: Call, base_url: str) -> str | TapedeckError:
    try:
        return "".join(provider.create_completion(call.model, call.messages, base_url=base_url))
    except TapedeckError as error:
        return error


def _check(entry: Entry, number: int, call: Call, got: str | TapedeckError) -> None:
    expected = call.expect
    where = f"{entry.file}, call {number}"
    if isinstance(got, str):
        if expected.get("text") != got:
            raise CassetteError(f"{where}: the adapter returned {got!r}, expected {expected}")
        return
    problems = (
        [f"error {type(got).__name__}"] if type(got).__name__ != expected.get("error") else []
    )
    for name in ("status", "partial"):
        if name in expected and getattr(got, name, None) != expected[name]:
            problems.append(f"{name} {getattr(got, name, None)!r}")
    if problems:
        raise CassetteError(f"{where}: got {', '.join(problems)} ({got}); expected {expected}")


def _pinner(entry: Entry, stamp: str) -> Callable[[Interaction], Interaction]:
    """``before_record``: the run-to-run differences replaced by what the script dictates."""
    schedules: Iterator[ResponseScript] = iter([call.script for call in entry.calls])
    http_date = format_datetime(datetime.fromisoformat(stamp.replace("Z", "+00:00")), usegmt=True)

    def pin(interaction: Interaction) -> Interaction:
        script = next(schedules)
        response = interaction.response
        headers = {
            name: [http_date] if name.lower() == "date" else values
            for name, values in response.headers.items()
        }
        sizes = list(response.plan.sizes)
        if response.header("transfer-encoding") is None and sizes:
            sizes = [sum(sizes)]  # Content-Length: no chunk boundaries, only TCP reads
        offsets = _scripted_offsets(script, len(sizes))
        chunks = [Chunk(size, offset) for size, offset in zip(sizes, offsets, strict=True)]
        pinned = RecordedResponse(
            response.status, response.reason, headers, response.body, chunks, response.extra
        )
        return Interaction(interaction.request, pinned, interaction.extra)

    return pin


def _scripted_offsets(script: ResponseScript, count: int) -> list[float]:
    offsets, at = [], script.first_byte_delay
    for index in range(count):
        at += script.delay_before(index)
        offsets.append(round(at * 1000.0, 3))
    return offsets


def expected_json() -> str:
    """The table as JSON: per cassette, the adapter calls that replay it and their outcomes."""
    data: dict[str, Any] = {
        "format": 1,
        "about": "Generated by tools/make_library.py; every cassette was recorded from a fake.",
        "cassettes": [
            {
                "file": entry.file,
                "provider": entry.provider,
                "about": entry.about,
                "calls": [
                    {"model": c.model, "messages": list(c.messages), "expect": c.expect}
                    for c in entry.calls
                ],
            }
            for entry in LIBRARY
        ],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def readme_text() -> str:
    """README.md for the library directory."""
    rows = []
    for entry in LIBRARY:
        for number, call in enumerate(entry.calls):
            prompt = call.messages[-1]["content"]
            replay = f'`{entry.provider}.create_completion("{call.model}", [user: "{prompt}"])`'
            file = f"`{entry.file}`" if number == 0 else f"`{entry.file}` #{number}"
            legacy = call.expect.get("legacy_text")
            original = "" if legacy is None else _quoted(legacy)
            rows.append(f"| {file} | {replay} | {_outcome(call.expect)} | {original} |")
    return _README.format(rows="\n".join(rows))


def _outcome(expect: dict[str, Any]) -> str:
    if "text" in expect:
        return _quoted(expect["text"])
    extra = [
        f"{name}={_quoted(value)}"
        for name, value in expect.items()
        if name not in ("error", "legacy_text")
    ]
    return f"raises `{expect['error']}`" + (f" ({', '.join(extra)})" if extra else "")


def _quoted(value: object) -> str:
    # JSON string syntax shows newlines unambiguously inside a table cell; characters that do
    # not print (the C1 controls in mojibake) are escaped too, so none is invisible.
    text = json.dumps(value, ensure_ascii=False).replace("|", "\\|")
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)


_README = """\
# Shipped cassettes

Generated by `python -m tools.make_library` (do not edit by hand; edit `tools/library_table.py`
and regenerate). The four upstream sites are long dead: **every cassette here was recorded from
Tapedeck's own fakes** through the recording proxy (`tapedeck record`), and each file's provenance
says so (`source: fake`, target `http://127.0.0.1:0`, a fake on an ephemeral port). Request URIs
name the real API, so plain vcrpy replays a call made without `base_url`.

Chunk boundaries are exactly what the fake sent; chunk offsets are the fake's scripted schedule
and the `Date` header the recording date, so regenerating with the same date gives identical
files. GetGpt's key, IV and UUID are seeded, yet different in every call: replaying GetGpt needs
the decrypting matcher.

Replay a cassette with `tapedeck replay FILE` and call the adapter with `base_url=` the printed
URL (the `messages` are a single user message; `expected.json` has the same table as data, with
the exact messages and outcomes).

| Cassette | Adapter call | Expected (correct decoding) | Original decoding, where it differs |
|---|---|---|---|
{rows}
"""


def _existing_date(directory: Path) -> str | None:
    """The recording date of the first library cassette already in ``directory``, if any."""
    for entry in LIBRARY:
        path = directory / entry.file
        try:
            provenance = yamlio.load(path).provenance if path.is_file() else None
        except (OSError, CassetteError):
            continue  # a broken cassette is what regenerating is for; its date is lost
        if provenance is not None:
            return provenance.recorded_at
    return None


def main(argv: list[str] | None = None) -> int:
    """``python -m tools.make_library``."""
    parser = argparse.ArgumentParser(prog="python -m tools.make_library", description=__doc__)
    parser.add_argument("directory", nargs="?", default=str(LIBRARY_DIR))
    parser.add_argument(
        "--recorded-at",
        metavar="ISO",
        help="the recording date (UTC, e.g. 2024-05-01T12:00:00Z, or 'now'); default: the date "
        "of the cassettes already there, so regenerating changes nothing that did not change",
    )
    args = parser.parse_args(argv)
    for path in make_library(args.directory, recorded_at=args.recorded_at):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
