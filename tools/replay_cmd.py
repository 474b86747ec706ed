"""`tapedeck replay CASSETTE`: serve a cassette on 127.0.0.1 until Ctrl-C or SIGTERM.

Once the server listens, stdout gets exactly one line, ``replay URL``, flushed, so a script can
read the URL and start at once. Everything else goes to stderr: one line per request (the
interaction played, or the miss and why), and on exit a summary naming every interaction that
was never played. Ctrl-C and SIGTERM stop the server and exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys

from cassettes.replay import ReplayEvent, ReplayServer
from fake_upstreams.offline import is_loopback_host
from tools._serving import cannot_listen, cannot_load, port_number, serve_until_signalled

NAME = "replay"
HELP = "serve a cassette on 127.0.0.1, chunk for chunk (Ctrl-C stops it)"
_EPILOG = """\
output:
  stdout  one line once the server listens: 'replay URL', e.g. 'replay http://127.0.0.1:40123'
  stderr  one line per request, once its reply is sent: '#N METHOD PATH -> STATUS, C chunk(s),
          B B, T ms' for the interaction played ('cut after K of C chunk(s) (b of B B)' when
          the client hung up or the server stopped first), or 'miss METHOD PATH -> 421: why'
          (the nearest recording and how it differs; the JSON answer lists the closest ones);
          on exit, a summary (replies cut short, repeats refused, requests that matched
          nothing) and the unplayed interactions.

Each interaction is played once, in recording order, unless --allow-repeats: a request that
matches an interaction already played gets 421 'interaction_already_played'. Ctrl-C or SIGTERM
stops the server (exit status 0).
"""


def _speed(value: str) -> float:
    try:
        speed = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not (math.isfinite(speed) and speed >= 0):
        raise argparse.ArgumentTypeError("speed must be 0 (as fast as possible) or positive")
    return speed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `tapedeck replay`."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    parser.add_argument("cassette", metavar="CASSETTE", help="the cassette file (YAML)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=port_number, default=0, help="port to listen on (default: 0, a free one)"
    )
    parser.add_argument(
        "--speed",
        type=_speed,
        default=0.0,
        metavar="F",
        help="replay the recorded timing scaled by F (1 = as recorded, 2 = twice as fast); "
        "0, the default, sends every chunk at once",
    )
    parser.add_argument(
        "--allow-repeats",
        action="store_true",
        help="answer a request again with its last recording once its recordings are used up",
    )
    parser.add_argument("--quiet", action="store_true", help="do not log requests on stderr")


def _say(message: str) -> None:
    print(f"tapedeck replay: {message}", file=sys.stderr, flush=True)


def _log(event: ReplayEvent) -> None:
    print(event.describe(), file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Load the cassette and serve it until a signal; 0 on a clean stop, 1 if it cannot start."""
    try:
        server = ReplayServer(
            args.cassette,
            speed=args.speed,
            allow_repeats=args.allow_repeats,
            host=args.host,
            port=args.port,
            on_event=None if args.quiet else _log,
        )
    except (OSError, RecursionError) as error:
        _say(cannot_load(args.cassette, error))
        return 1
    if not is_loopback_host(args.host):
        _say(f"warning: listening on {args.host}, beyond loopback")
    return asyncio.run(_serve(server, args))


async def _serve(server: ReplayServer, args: argparse.Namespace) -> int:
    total = len(server.cassette)
    status = await serve_until_signalled(
        {"replay": server},
        say=_say,
        cannot_start=lambda _, error: cannot_listen(f"{args.host}:{args.port}", error),
        ready=f"{args.cassette}: {total} interaction(s) ready; Ctrl-C stops the server",
        say_stopping=False,  # the summary says it
    )
    if status == 0:
        _summary(server)
    return status


def _summary(server: ReplayServer) -> None:
    total, left = len(server.cassette), server.describe_unplayed()
    cut, repeats = server.cut_plays, server.repeats
    unmatched = len(server.misses) - repeats
    _say(
        f"stopped: played {len(server.played)} request(s) from {total - len(left)} of {total} "
        "interaction(s)"
        + (f", {cut} of them cut short" if cut else "")
        + f"; {unmatched} request(s) matched nothing"
        + (f"; {repeats} request(s) already played (use --allow-repeats)" if repeats else "")
    )
    if left:
        _say(f"{len(left)} interaction(s) never played:")
        for line in left:
            print(f"  {line}", file=sys.stderr, flush=True)
