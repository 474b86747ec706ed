"""`tapedeck record`: a recording proxy in front of one target, until Ctrl-C or SIGTERM.

Once it listens, stdout gets exactly one line, ``record URL``, flushed, so a script can read the
URL and start sending. Everything else goes to stderr: the session's settings, one line per
request with the running totals, and a summary when it stops. Ctrl-C and SIGTERM stop it (exit
0) after replies in flight had a moment to finish and the cassette was written.

Nothing recorded is lost quietly. A session that may record checks that it can write the cassette
and takes the cassette's session lock (see :mod:`cassettes.recorder`) before the URL is printed,
and refuses to start with one line and exit status 1 otherwise; a write that fails later is one
line on stderr at once, every request line after it says the cassette is not saved, and if the
last write still fails the summary says what was lost and the exit status is 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from urllib.parse import urlsplit

from cassettes.model import Source
from cassettes.proxy import RecordingProxy
from cassettes.recorder import RECORD_MODES, Event, Recorder, RecordMode
from cassettes.scrub import ScrubPolicy
from fake_upstreams.offline import is_loopback_host
from tools._serving import cannot_listen, cannot_load, port_number, serve_until_signalled

NAME = "record"
HELP = "record a target's traffic into a cassette through a streaming proxy (Ctrl-C stops)"
EPILOG = """\
record modes (as in vcrpy):
  once          the cassette exists: replay what matches, refuse anything new (409);
                it does not: record everything (the default)
  new_episodes  replay what matches, record and append the rest
  none          replay only; the cassette must exist
  all           record everything; the cassette is replaced

one session per cassette: a session that may record holds an exclusive lock on the cassette
  (flock on .NAME.lock beside it) until it stops; a second one on the same file, or on a symlink
  to it, is refused. The lock dies with the process, even a killed one. Before 'record URL', the
  cassette's directory is created and checked writable; a symlinked cassette is written through
  to its target.

scrubbing: Authorization, Cookie, Set-Cookie, and any header, query parameter or JSON field
  whose name looks like a key, token, secret, password or session is replaced by <scrubbed>,
  as are bearer tokens, sk- keys and JWTs anywhere, before anything is written.

output:
  stdout  'record URL' once the proxy listens: send your requests there
  stderr  one line per request with running totals, and a summary at the end; a cassette
          write that fails is said at once (exit status 1 if it still fails at the end)
"""


def _base_url(value: str) -> str:
    """An argparse type for --target and --record-as; argparse names the option in errors."""
    try:
        parts = urlsplit(value)
    except ValueError as error:  # e.g. "Invalid IPv6 URL"
        raise argparse.ArgumentTypeError(f"not a valid URL: {value!r} ({error})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"must be an http(s) URL, got {value!r}")
    try:
        port = parts.port
    except ValueError:  # not a number, or beyond 65535
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"the port must be 1 to 65535, got {value!r}")
    if parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(f"a base URL takes no query or fragment, got {value!r}")
    return value.rstrip("/")


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {value}")
    return seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `tapedeck record`."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument(
        "--target",
        required=True,
        type=_base_url,
        metavar="URL",
        help="base URL to forward every request to",
    )
    parser.add_argument("--cassette", required=True, metavar="PATH", help="cassette file")
    parser.add_argument(
        "--mode", choices=RECORD_MODES, default="once", help="record mode (default: once)"
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; anything else warns)",
    )
    parser.add_argument(
        "--port", type=port_number, default=0, help="port (default 0: any free one)"
    )
    parser.add_argument(
        "--source",
        choices=("live", "fake"),
        help="provenance: was the target a live service or a local fake? (default: fake for a "
        "loopback target, live otherwise)",
    )
    parser.add_argument(
        "--record-as",
        type=_base_url,
        metavar="URL",
        help="write request URIs as if sent to this base URL (e.g. the real site a local "
        "stand-in replaces), so plain vcrpy matches them by host",
    )
    scrub = parser.add_argument_group("scrubbing (NAME in any case; repeatable)")
    for flag, what in (
        ("--scrub-header", "a header"),
        ("--scrub-query", "a query parameter"),
        ("--scrub-field", "a JSON field"),
    ):
        scrub.add_argument(
            flag,
            action="append",
            default=[],
            metavar="NAME",
            help=f"also scrub {what} named NAME (names apply to all three)",
        )
    scrub.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="NAME",
        help="never scrub things named NAME (e.g. a harmless 'token_count')",
    )
    parser.add_argument(
        "--read-timeout",
        type=_seconds,
        default=300.0,
        metavar="S",
        help="give up on an upstream silent for S seconds (default 300)",
    )
    parser.add_argument("--quiet", action="store_true", help="no per-request lines on stderr")


def _say(message: str) -> None:
    print(f"tapedeck record: {message}", file=sys.stderr, flush=True)


def policy_from(args: argparse.Namespace) -> ScrubPolicy:
    """The scrub policy the options ask for."""
    names = [*args.scrub_header, *args.scrub_query, *args.scrub_field]
    return ScrubPolicy.with_names(*names, keep=args.keep)


def source_for(target: str, given: str | None) -> Source:
    """``given``, else "fake" for a loopback target and "live" for anything else."""
    if given == "live":
        return "live"
    if given == "fake":
        return "fake"
    return "fake" if is_loopback_host(urlsplit(target).hostname) else "live"


def run(args: argparse.Namespace) -> int:
    """Serve the proxy until a signal; 0 on a clean stop, 1 if it cannot start."""
    mode: RecordMode = args.mode
    source = source_for(args.target, args.source)
    if not is_loopback_host(args.host):
        _say(
            f"warning: listening on {args.host}, beyond loopback: anyone who can reach this "
            "machine can send requests through your recording (and its credentials)"
        )
    if not args.cassette:  # Path("") would be the current directory
        _say("cannot read '': the cassette path is empty")
        return 1
    totals = _Progress(quiet=args.quiet)
    try:
        # CassetteError (one line and exit 1, from tools.cli) when the file cannot be written,
        # another session records into it, or mode none has no cassette to replay.
        recorder = Recorder(
            args.cassette,
            target_url=args.target,
            source=source,
            mode=mode,
            policy=policy_from(args),
            listener=totals.show,
            on_write_problem=lambda problem: _say_write_problem(args.cassette, problem),
        )
    except (OSError, RecursionError) as error:
        _say(cannot_load(args.cassette, error))
        return 1
    totals.recorder = recorder
    proxy = RecordingProxy(
        recorder,
        args.target,
        host=args.host,
        port=args.port,
        record_as=args.record_as,
        read_timeout=args.read_timeout,
    )
    return asyncio.run(_serve(proxy, args, source))


async def _serve(proxy: RecordingProxy, args: argparse.Namespace, source: Source) -> int:
    recorder = proxy.recorder
    why = " (loopback target)" if args.source is None and source == "fake" else ""
    ready = (
        f"{recorder.mode} mode: {args.target} -> {args.cassette}, provenance source "
        f"{source}{why}; "
        + ("replaying its existing interactions; " if recorder.replaying else "")
        + ("recording new ones" if recorder.recording else "not recording")
        + "; Ctrl-C stops"
    )
    # The proxy is stopped even when it never started: then it only closes the recorder.
    status = await serve_until_signalled(
        {"record": proxy},
        say=_say,
        cannot_start=lambda _, error: cannot_listen(f"{args.host}:{args.port}", error),
        ready=ready,
    )
    if status == 0:
        _say(_summary(recorder, args.cassette))
        if recorder.write_problem is not None:
            return 1  # what was recorded is lost: a script must not take it for a success
    return status


def _say_write_problem(path: str, problem: str | None) -> None:
    # Called from the recorder's writer thread, the moment a write fails or works again.
    if problem is None:
        _say(f"{path} written again: nothing recorded was lost")
    else:
        _say(
            f"{problem}; what was recorded stays in memory and every later write (after each "
            "new interaction, and at the end) tries to save it all"
        )


def _summary(recorder: Recorder, path: str) -> str:
    stats = recorder.stats
    parts = [
        f"{stats.recorded} recorded ({stats.body_bytes} body bytes)",
        f"{stats.replayed} replayed",
        f"{stats.refused} refused",
        f"{stats.failed} failed or cut (not recorded)",
    ]
    if recorder.write_problem is not None:
        where = (
            f"NOT SAVED: {recorder.write_problem}; {recorder.unsaved_count} interaction(s) "
            f"are lost, and {path} is as the last write that worked left it"
        )
    elif stats.recorded:
        where = f"{path} now holds {len(recorder.cassette)} interaction(s)"
    elif not os.path.exists(path):
        where = "nothing recorded, no cassette written"
    elif recorder.recording:
        where = f"nothing new, {path} left as it was"
    else:
        where = f"{path} only replayed, left as it was"
    return f"done in {stats.elapsed():.1f} s: " + ", ".join(parts) + f"; {where}"


class _Progress:
    """One stderr line per request, with the session's running totals."""

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self.recorder: Recorder | None = None  # set once the recorder exists

    def show(self, event: Event) -> None:
        if self.quiet or self.recorder is None:
            return
        s = self.recorder.stats
        problem = self.recorder.write_problem
        unsaved = f" | NOT SAVED ({problem})" if problem else ""
        status = f" {event.status}" if event.status else ""
        body = f" {event.body_bytes}B/{event.chunks} chunks" if event.chunks else ""
        took = f" {event.elapsed_ms:.1f}ms" if event.elapsed_ms else ""
        detail = f" ({event.detail})" if event.detail else ""
        print(
            f"{event.kind} {event.method} {event.path}{status}{body}{took}{detail} | "
            f"total {s.recorded} recorded, {s.replayed} replayed, {s.body_bytes}B, "
            f"{s.elapsed():.1f}s{unsaved}",
            file=sys.stderr,
            flush=True,
        )
