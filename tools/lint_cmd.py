"""`tapedeck lint PATH...`: find secrets and unsafe YAML tags in cassette files.

Files are linted as given; directories are searched recursively for ``*.yaml`` and ``*.yml``
(a directory named like a cassette is searched, not read). Every finding is one stdout line,
``path:line: kind: message`` (the message never repeats the secret), in the order of the paths
given. A file that cannot be read (or is not a regular file) is reported on stderr and skipped;
the others are still linted. Exit status: 0 when clean, 1 on any finding, 2 on a usage error (no
path, or a path that does not exist) or when some file could not be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cassettes.lint import cassettes_under, lint_file

NAME = "lint"
HELP = "report secret-looking values and unsafe YAML tags in cassettes (exit 1 if any)"
_EPILOG = """\
kinds: unsafe-tag, bearer-token, sk-key, jwt, secret-header, cookie, secret-query, secret-field,
not-yaml, not-cassette (see cassettes/lint.py). Exit status: 0 clean, 1 findings, 2 usage error
or a file that could not be read (every other file is still linted).
"""
USAGE_ERROR = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `tapedeck lint`."""
    parser.epilog = _EPILOG
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="cassette files or directories to search"
    )


def cassette_files(paths: list[str]) -> list[Path]:
    """The files to lint, in order: files as given, directories' cassettes sorted.

    Raises FileNotFoundError for a path that does not exist.
    """
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files += cassettes_under(path)
        elif path.exists() or path.is_symlink():  # a broken link is reported when read
            files.append(path)
        else:
            raise FileNotFoundError(name)
    return list(dict.fromkeys(files))


def _say(message: str) -> None:
    print(f"tapedeck lint: {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Lint every file; 0 clean, 1 findings, 2 usage error or an unreadable file."""
    try:
        files = cassette_files(args.paths)
    except FileNotFoundError as error:
        _say(f"no such file or directory: {error.args[0]}")
        return USAGE_ERROR
    findings = unreadable = 0
    for file in files:
        try:
            found = lint_file(file)
        except OSError as error:
            _say(f"cannot read {file}: {error.strerror or error}")
            unreadable += 1
            continue
        for finding in found:
            print(finding)
        findings += len(found)
    sys.stdout.flush()
    if not files:
        _say(f"no *.yaml or *.yml files under {', '.join(args.paths)}")
    elif findings:
        _say(f"{findings} finding(s) in {len(files) - unreadable} file(s)")
    else:
        _say(f"{len(files) - unreadable} file(s) clean")
    if unreadable:
        _say(f"{unreadable} file(s) could not be read")
        return USAGE_ERROR
    return 1 if findings else 0
