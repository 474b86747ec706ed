"""The `tapedeck` command line: one subcommand per module, registered in COMMANDS.

Each command module exposes ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
Errors from Tapedeck's hierarchy are printed as one line (no traceback) with exit status 1;
bad usage exits 2 as argparse does. Output cut short by its reader (``tapedeck inspect x.yaml |
head``) ends the command quietly with status 141, as SIGPIPE ends a C tool (128 + 13).

A command's ``--host`` (the address it listens on) is checked here, once for all of them: an
empty one is bad usage (see :func:`tools._serving.listen_host`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from providers.errors import TapedeckError
from tools._serving import listen_host

#: The exit status of a command whose reader closed the pipe (128 + SIGPIPE's 13, as a shell
#: reports a C tool killed by it); constant, as Windows has no signal.SIGPIPE.
_SIGPIPE_STATUS = 141
#: Command modules, in the order `tapedeck --help` lists them.
COMMANDS: tuple[str, ...] = (
    "tools.serve",
    "tools.record_cmd",
    "tools.replay_cmd",
    "tools.inspect_cmd",
    "tools.lint_cmd",
    "tools.bench_cmd",
)


class Command(Protocol):
    NAME: str
    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tapedeck",
        description=(
            "Offline test harness for LLM chat provider adapters: fake upstreams on 127.0.0.1, "
            "chunk-faithful cassettes, benchmarks."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMANDS:
        command = cast(Command, importlib.import_module(module_name))
        sub = subparsers.add_parser(command.NAME, help=command.HELP, description=command.HELP)
        command.add_arguments(sub)
        sub.set_defaults(_run=command.run, _parser=sub)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tapedeck")
    except PackageNotFoundError:
        return "0+unknown"


def _check_listen_host(args: argparse.Namespace) -> None:
    """Exit 2 if the command has a ``--host`` and it is empty.

    Each command declares its own ``--host``; checking here means none of them can forget to,
    and an empty one never reaches a server, which would take it for every interface.
    """
    host = getattr(args, "host", None)
    if not isinstance(host, str):
        return
    try:
        listen_host(host)
    except argparse.ArgumentTypeError as error:
        cast(argparse.ArgumentParser, args._parser).error(f"argument --host: {error}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    _check_listen_host(args)
    try:
        return int(args._run(args))
    except TapedeckError as exc:
        print(f"tapedeck {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader left. Point stdout at /dev/null so that the interpreter's final flush of
        # what is still buffered cannot raise the same error again while exiting.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return _SIGPIPE_STATUS


if __name__ == "__main__":
    sys.exit(main())
