"""`tapedeck serve`: the four fake upstreams on 127.0.0.1, until Ctrl-C or SIGTERM.

Once every fake listens, stdout gets exactly one line per fake, ``NAME URL``, and is flushed, so
a script can read the URLs and start at once. Everything else goes to stderr: one line per
request (``NAME METHOD PATH STATUS BYTESB MSms``, plus ``rejected=CODE`` when the fake refused
the request), warnings and errors. Ctrl-C and SIGTERM stop the fakes and exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Mapping

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from fake_upstreams.app import Strictness
from fake_upstreams.offline import is_loopback_host
from fake_upstreams.registry import FAKES, build_server, spec_for
from fake_upstreams.scenario import EXAMPLE, load_scenario
from fake_upstreams.server import FakeServer
from tools._serving import cannot_listen, port_number, serve_until_signalled

NAME = "serve"
HELP = "start the fake upstreams on 127.0.0.1 (Ctrl-C stops them)"
_FIRST_PORT = min(spec.default_port for spec in FAKES.values())
_LAST_PORT = max(spec.default_port for spec in FAKES.values())
#: The highest --base-port that keeps every fake's shifted port within 65535.
_LAST_BASE_PORT = 65535 - (_LAST_PORT - _FIRST_PORT)
_BUSY = (
    "the port is already in use (another `tapedeck serve`?). "
    "Use --port 0 for free ephemeral ports, or --base-port N."
)


def _epilog() -> str:
    ports = "\n".join(
        f"  {spec.name:<12} {spec.default_port}  stands in for https://{spec.real_host}"
        for spec in FAKES.values()
    )
    return f"""\
fixed ports (the default; --port 0 picks free ones, --base-port N shifts them):
{ports}

output:
  stdout  one line per fake once all listen, 'NAME URL', e.g. 'GetGpt http://127.0.0.1:8103'
  stderr  one line per request: 'NAME METHOD PATH STATUS BYTESB MSms [rejected=CODE]'

scripts: every fake echoes 'You said: <last user message>' unless told otherwise, by
  --scenario FILE (JSON or YAML; example: {EXAMPLE}),
  POST /__tapedeck__/script on a fake, or a per-request X-Tapedeck-Script header.
  GET /__tapedeck__/journal shows what a fake received; POST /__tapedeck__/reset clears it.

Ctrl-C or SIGTERM stops the fakes (exit status 0). A busy port is an error (exit status 1).
"""


def _names(value: str) -> list[str]:
    try:
        names = [spec_for(part).name for part in value.split(",") if part.strip()]
    except KeyError as error:
        raise argparse.ArgumentTypeError(str(error.args[0])) from None
    if not names:
        raise argparse.ArgumentTypeError("name at least one fake")
    return list(dict.fromkeys(names))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `tapedeck serve`."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _epilog()
    parser.add_argument(
        "--only",
        type=_names,
        default=list(FAKES),
        metavar="NAME[,NAME...]",
        help=f"start only these fakes (any case; default: all of {', '.join(FAKES)})",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1; anything else warns: the fakes and "
        "their control endpoints would be reachable from other machines)",
    )
    ports = parser.add_mutually_exclusive_group()
    ports.add_argument(
        "--port",
        type=port_number,
        help="0: a free ephemeral port for every fake; another number: that port, with a single "
        "fake only (--only NAME)",
    )
    ports.add_argument(
        "--base-port",
        type=port_number,
        metavar="N",
        help=f"fixed ports shifted to start at N (1..{_LAST_BASE_PORT}) instead of {_FIRST_PORT}",
    )
    parser.add_argument(
        "--scenario",
        metavar="FILE",
        help="JSON or YAML file of scripts per fake (see fake_upstreams/scenario.py)",
    )
    parser.add_argument(
        "--lenient",
        action="store_true",
        help="accept any well-formed request (default: strict, requiring the original client's "
        "exact browser headers)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not log requests on stderr")


def _ports(names: list[str], port: int | None, base_port: int | None) -> dict[str, int]:
    if port is not None:
        if port != 0 and len(names) > 1:
            raise ValueError(
                f"--port {port} fits one fake only: add --only NAME, or use --port 0 "
                "(ephemeral ports) or --base-port N"
            )
        return dict.fromkeys(names, port)
    if base_port is not None and not 1 <= base_port <= _LAST_BASE_PORT:
        # One range whatever --only says, so a base port that works keeps working for any fakes.
        span = _LAST_PORT - _FIRST_PORT
        why = (
            "0 is not a fixed port (--port 0 picks free ones)"
            if base_port < 1
            else f"{base_port + span} would be beyond 65535"
        )
        raise ValueError(
            f"--base-port {base_port} is out of range: it must be 1..{_LAST_BASE_PORT}, as the "
            f"fakes take ports N..N+{span} and {why}"
        )
    shift = 0 if base_port is None else base_port - _FIRST_PORT
    return {name: FAKES[name].default_port + shift for name in names}


def _say(message: str) -> None:
    print(f"tapedeck serve: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Build the fakes, serve until a signal; 0 on a clean stop, 1 if they cannot start."""
    try:
        ports = _ports(args.only, args.port, args.base_port)
        scenario = None if args.scenario is None else load_scenario(args.scenario)
    except ValueError as error:
        _say(str(error))
        return 1
    if not is_loopback_host(args.host):
        _say(
            f"warning: listening on {args.host}, beyond loopback: anyone who can reach this "
            "machine can use the fakes and change their scripts"
        )
    strictness: Strictness = "lenient" if args.lenient else "strict"
    servers = {
        name: build_server(name, host=args.host, port=port, strictness=strictness)
        for name, port in ports.items()
    }
    for name, server in servers.items():
        if scenario is not None:
            scenario.plan_for(name).apply(server.state)
        if not args.quiet:
            # Outermost, so it sees the final response of every route, errors included.
            server.app.middlewares.insert(0, _request_logger(name))
    return asyncio.run(_serve(servers, ports))


async def _serve(servers: Mapping[str, FakeServer], ports: Mapping[str, int]) -> int:
    def cannot_start(name: str, error: OSError) -> str:
        where = f"{servers[name].host}:{ports[name]} for {name}"
        return cannot_listen(where, error, _BUSY)

    ready = f"{len(servers)} fake(s) ready; Ctrl-C stops them"
    return await serve_until_signalled(servers, say=_say, cannot_start=cannot_start, ready=ready)


def _request_logger(name: str) -> Middleware:
    @web.middleware
    async def log_request(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        status, note = "-", " cancelled"  # what is left if the handler never returns
        try:
            response = await handler(request)
            status, note = str(response.status), _rejection(response)
            await _send_now(request, response)
            return response
        finally:
            took = (time.perf_counter() - start) * 1000
            size = request.writer.output_size  # status line, headers and body, as sent
            path = request.raw_path
            _say_request(f"{name} {request.method} {path} {status} {size}B {took:.1f}ms{note}")

    return log_request


def _say_request(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _rejection(response: web.StreamResponse) -> str:
    """`` rejected=CODE`` for the fakes' JSON errors (the code their journal verdict holds)."""
    if response.status < 400 or not isinstance(response, web.Response):
        return ""
    body = response.body
    try:
        code = json.loads(body)["error"]["code"] if isinstance(body, bytes) else None
    except (ValueError, TypeError, KeyError):
        code = None
    return f" rejected={code}" if isinstance(code, str) else ""


async def _send_now(request: web.Request, response: web.StreamResponse) -> None:
    """Send a not-yet-sent reply here, so the log line has its real size and duration.

    aiohttp sends it after the middlewares otherwise; its own later ``prepare``/``write_eof``
    calls then do nothing. A reply a fault already cut (transport closing) is left alone.
    """
    transport = request.transport
    if response.prepared or transport is None or transport.is_closing():
        return
    with contextlib.suppress(ConnectionError):
        await response.prepare(request)
        await response.write_eof()
