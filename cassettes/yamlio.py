"""Cassette files on disk: load, save atomically.

The file is a vcrpy cassette (``version: 1``, ``interactions``, each response's whole body in
``body.string``) with two additions: a top-level ``tapedeck:`` block (format version and
provenance), which vcrpy ignores, and in each response ``chunks:``, which vcrpy keeps. The chunk
plan is one line of text, ``12@0.0 30@1.5`` (bytes @ milliseconds after the request): a YAML list
of ``[size, offset_ms]`` pairs costs three nodes per chunk and made loading several times slower
on streamed answers, so pairs are read but never written. The document shape is checked in
:mod:`cassettes.document`; the YAML itself is read by :mod:`cassettes.safeyaml`.

The file is plain ASCII (non-ASCII text is escaped), because vcrpy opens cassettes in the
platform's default encoding, which is not UTF-8 everywhere.
"""

from __future__ import annotations

import os
import secrets
from contextlib import suppress
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import Node

from cassettes.document import cassette_to_document, document_to_cassette
from cassettes.model import Cassette
from cassettes.safeyaml import document_data, gc_paused, load_data

_STR = "tag:yaml.org,2002:str"
_BASE_DUMPER: type[Any] = getattr(yaml, "CSafeDumper", None) or yaml.SafeDumper


def loads(data: bytes | str, *, source: str = "<string>") -> Cassette:
    """Parse cassette text. Raises UnsafeCassetteError or CassetteFormatError, naming ``source``."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with gc_paused():
        return document_to_cassette(load_data(raw, source), source)


def cassette_from_nodes(root: Node | None, source: str = "<string>") -> Cassette:
    """What :func:`loads` returns, from a document already composed and checked for unsafe tags
    (lint composes once, for its own walk and for this)."""
    with gc_paused():
        return document_to_cassette(document_data(root, source), source)


def load(path: str | os.PathLike[str]) -> Cassette:
    """Read a cassette file (FileNotFoundError if it does not exist)."""
    return loads(Path(path).read_bytes(), source=os.fspath(path))


class _Dumper(_BASE_DUMPER):  # type: ignore[misc]
    """Safe dumper: no anchors, multi-line text as literal blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: Any, data: str) -> Any:
    # Ask for a literal block when the text has line breaks; the emitter falls back to a quoted
    # style by itself whenever a block could not hold the text exactly (trailing spaces, \r, ...).
    style = "|" if "\n" in data else None
    return dumper.represent_scalar(_STR, data, style=style)


_Dumper.add_representer(str, _represent_str)


def dumps(cassette: Cassette) -> bytes:
    """The cassette as YAML bytes (ASCII only)."""
    document = cassette_to_document(cassette)
    with gc_paused():
        text: bytes = yaml.dump(
            document,
            Dumper=_Dumper,
            encoding="utf-8",
            allow_unicode=False,
            sort_keys=False,
            default_flow_style=False,
            width=120,
        )
    return text


def save(cassette: Cassette, path: str | os.PathLike[str]) -> None:
    """Write ``cassette`` to ``path`` atomically (see :func:`write_atomic`)."""
    write_atomic(Path(path), dumps(cassette))


def write_atomic(path: Path, data: bytes, *, new_mode: int | None = 0o644) -> None:
    """Replace ``path`` with ``data`` all at once, or not at all.

    The bytes go to a temporary file in the same directory (so the rename cannot cross file
    systems), are fsynced, and only then renamed over the target. An exception or a killed
    process leaves the old file exactly as it was; an exception also removes the temporary file
    (a SIGKILL cannot, which is why its name ends in ``.partial``, ignored by git).

    A symlink is written through: its target is replaced (created if missing) and the link stays.
    A file that exists keeps its mode; a new one gets ``new_mode``, or with ``None`` what
    ``open(path, "w")`` would give (0o666 less the umask). Cassettes default to 0o644: a
    tighter umask would surprise people sharing them in a repository.
    """
    path = Path(os.path.realpath(path))  # renaming over a link would replace the link itself
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    try:
        mode: int | None = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = new_mode
    handle, temporary = _new_file_beside(path)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        if mode is not None:
            os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)


def _new_file_beside(path: Path) -> tuple[int, Path]:
    """A new, empty, hidden ``.partial`` file in ``path``'s folder, open for writing.

    Created with mode 0o666, so the umask decides as for any file a program writes
    (``tempfile.mkstemp`` would make it 0o600, and the rename would carry that over).
    """
    while True:
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.partial")
        try:
            return os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), temporary
        except FileExistsError:  # 48 random bits: practically never, but never overwrite
            continue


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable on POSIX; directories cannot be opened this way on Windows.
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
