"""The shared adapter base: one public shape for all four providers.

An adapter is a class with the original's attributes and entry points plus a codec. Everything
else lives here once: model resolution, harness keywords, the request/decode loop, and the
bridges that make a synchronous provider usable from async code and the other way round.

Harness keywords are consumed here and never reach a request body:

``base_url``  where to send the request (a fake, a replay server, or the real site; default)
``timeout``   seconds, or :class:`~providers.transport.Timeouts` (default: finite deadlines)
``decoding``  ``"correct"`` (default) or ``"legacy"`` (the original's decoding, bugs included)
``session``   a requests.Session / aiohttp.ClientSession to reuse (keep-alive)
``proxy``     an HTTP proxy URL
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import aiohttp
import requests

from providers import transport
from providers.errors import LocalProtocolError, ModelNotSupportedError
from providers.transport import HttpCall, Timeouts
from providers.wire.common import DECODINGS, Decoding, Messages, UpstreamCodec

HARNESS_KEYWORDS = frozenset({"base_url", "timeout", "decoding", "session", "proxy"})
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class PreparedCall:
    """A validated call: the request to send and how to read the reply."""

    http: HttpCall
    decoding: Decoding
    session: Any


class Provider:
    """Base of every adapter. Subclasses set the metadata and ``codec``; nothing else."""

    url: ClassVar[str]
    api_endpoint: ClassVar[str]
    working: ClassVar[bool] = False
    supports_stream: ClassVar[bool] = True
    supports_gpt_35_turbo: ClassVar[bool] = False
    supports_gpt_4: ClassVar[bool] = False
    needs_auth: ClassVar[bool] = False
    models: ClassVar[tuple[str, ...]]
    default_model: ClassVar[str]
    model_aliases: ClassVar[Mapping[str, str]] = {}
    codec: ClassVar[UpstreamCodec]
    #: True when the original was an aiohttp async generator, False for requests.
    native_async: ClassVar[bool] = False
    #: Read size of the original's ``iter_content`` (sync providers only).
    read_size: ClassVar[int] = 4096

    @classmethod
    def get_model(cls, model: str) -> str:
        """Resolve a model name: '' → default, alias → target, unknown → ModelNotSupportedError."""
        if not model:
            return cls.default_model
        resolved = cls.model_aliases.get(model, model)
        if resolved not in cls.models:
            raise ModelNotSupportedError(cls.__name__, model, cls.models)
        return resolved

    @classmethod
    def prepare(cls, model: str, messages: Messages, kwargs: Mapping[str, Any]) -> PreparedCall:
        """Validate everything and build the request, before any byte is sent."""
        decoding = kwargs.get("decoding", "correct")
        if decoding not in DECODINGS:
            raise LocalProtocolError(f"decoding must be one of {DECODINGS}, got {decoding!r}")
        _check_messages(messages)
        session = kwargs.get("session")
        _check_session(cls, session)
        options = {key: value for key, value in kwargs.items() if key not in HARNESS_KEYWORDS}
        wire = cls.codec.build_request(cls.get_model(model), messages, options)
        base_url = str(kwargs.get("base_url") or cls.codec.api_base).rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise LocalProtocolError(f"base_url must start with http:// or https://: {base_url!r}")
        http = HttpCall(
            provider=cls.__name__,
            url=base_url + wire.path,
            wire=wire,
            timeouts=Timeouts.coerce(kwargs.get("timeout")),
            read_size=cls.read_size,
            proxy=kwargs.get("proxy"),
        )
        return PreparedCall(http=http, decoding=decoding, session=session)

    # -- the two public entry points -------------------------------------------------------

    @classmethod
    def create_completion(
        cls, model: str, messages: Messages, stream: bool = True, **kwargs: Any
    ) -> Iterator[str]:
        """Yield the reply text piece by piece (all of it as one piece when ``stream=False``).

        Errors in the arguments (unknown model, bad harness keyword) are raised here, at call
        time; transport and protocol errors are raised while iterating.
        """
        call = cls.prepare(model, messages, kwargs)
        if cls.native_async and call.session is not None:
            raise LocalProtocolError(
                f"session= works only with {cls.__name__}.create_async_generator: an aiohttp "
                "session belongs to the caller's event loop, and create_completion runs the call "
                "on a private one (leave session out here; each call then opens its own)"
            )
        if cls.native_async:
            pieces = _iterate_in_loop_thread(lambda: cls._decode_async(call))
        else:
            pieces = cls._decode_sync(call)
        return pieces if stream else _joined(pieces)

    @classmethod
    def create_async_generator(
        cls, model: str, messages: Messages, **kwargs: Any
    ) -> AsyncIterator[str]:
        """The asynchronous twin of :meth:`create_completion` (always streaming)."""
        call = cls.prepare(model, messages, kwargs)
        if cls.native_async:
            return cls._decode_async(call)
        return _iterate_in_worker_thread(lambda interrupter: cls._decode_sync(call, interrupter))

    # -- the decode loops: transport chunks in, text pieces out ----------------------------

    @classmethod
    def _decode_sync(
        cls, call: PreparedCall, interrupter: transport.Interrupter | None = None
    ) -> Iterator[str]:
        decoder = cls.codec.new_decoder(call.decoding)
        chunks = transport.stream_sync(call.http, call.session, interrupter=interrupter)
        try:
            for chunk in chunks:
                yield from _as_text(decoder.feed(chunk))
                if decoder.done:
                    return
            yield from _as_text(decoder.finish())
        finally:
            chunks.close()

    @classmethod
    async def _decode_async(cls, call: PreparedCall) -> AsyncIterator[str]:
        decoder = cls.codec.new_decoder(call.decoding)
        chunks = transport.stream_async(call.http, call.session)
        try:
            async for chunk in chunks:
                for piece in _as_text(decoder.feed(chunk)):
                    yield piece
                if decoder.done:
                    return
            for piece in _as_text(decoder.finish()):
                yield piece
        finally:
            await chunks.aclose()


def _check_messages(messages: object) -> None:
    """Messages every upstream can carry: a non-empty list of ``{"role": str, "content": str}``.

    Checked before anything is sent, so a malformed list is a LocalProtocolError naming the
    message at fault, not a KeyError from deep inside a codec (or a 400 from the server).
    """
    shape = 'a non-empty list of {"role": str, "content": str} dicts'
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence) or not messages:
        raise LocalProtocolError(f"messages must be {shape}, got {messages!r:.80}")
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise LocalProtocolError(f"messages[{index}] must be a dict, got {message!r:.80}")
        for key in ("role", "content"):
            value = message.get(key)
            if not isinstance(value, str):
                raise LocalProtocolError(
                    f"messages[{index}][{key!r}] must be a string, got {value!r:.80}"
                )


def _check_session(provider: type[Provider], session: object) -> None:
    """A session of the HTTP library the provider's original used (requests or aiohttp)."""
    if session is None:
        return
    library, expected = (
        ("aiohttp", aiohttp.ClientSession)
        if provider.native_async
        else ("requests", requests.Session)
    )
    if not isinstance(session, expected):
        raise LocalProtocolError(
            f"{provider.__name__} talks through {library}, as its original did: session= must "
            f"be a {expected.__module__}.{expected.__qualname__}, got {type(session).__name__}"
        )


def _as_text(pieces: list[str | None]) -> list[str]:
    # Legacy GetGpt decoding yields None exactly where the original did; it is passed through on
    # purpose (tests assert on it), so the declared type is a convenience for the common case.
    return pieces  # type: ignore[return-value]


def _joined(pieces: Iterator[str]) -> Iterator[str]:
    yield "".join(piece for piece in pieces if piece is not None)


class _Worker:
    """One daemon thread running calls in order; each result comes back as an asyncio future.

    Not ``asyncio.to_thread``: its default executor is joined by ``asyncio.run`` on the way out,
    so a read blocked in requests would hold up the end of the program for its whole timeout,
    and its calls may land on different threads, so a cleanup could run *while* the read it
    cleans up after is still going ("generator already executing"). Here calls queue up behind
    each other, and nobody waits for a thread that is still blocked.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any]] | None]
        self._jobs = queue.SimpleQueue()
        threading.Thread(target=self._run, name="tapedeck-worker", daemon=True).start()

    def call(self, function: Callable[[], _T]) -> asyncio.Future[_T]:
        future: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        self._jobs.put((function, future))
        return future

    def stop(self) -> None:
        """Let the thread end once the calls queued so far are done."""
        self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            function, future = job
            try:
                outcome: tuple[bool, Any] = (True, function())
            except BaseException as exc:  # handed to the awaiting task, whatever it is
                outcome = (False, exc)
            # A closed loop raises RuntimeError: then nobody is waiting for this any more.
            with contextlib.suppress(RuntimeError):
                future.get_loop().call_soon_threadsafe(_settle, future, outcome)


def _settle(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if future.done():
        return  # cancelled while the call ran
    succeeded, value = outcome
    if succeeded:
        future.set_result(value)
    else:
        future.set_exception(value)


async def _iterate_in_worker_thread(
    make: Callable[[transport.Interrupter], Iterator[_T]],
) -> AsyncIterator[_T]:
    """Drive a blocking iterator from async code without blocking the event loop.

    When the consumer is cancelled (``task.cancel()``, ``wait_for``, Ctrl-C under
    ``asyncio.run``) during a blocking read, the cancellation goes through at once: the read is
    cut short through the interrupter (its socket is shut down), and the iterator is closed on
    the worker thread right after it, without anyone waiting for that.
    """
    interrupter = transport.Interrupter()
    iterator = make(interrupter)  # a generator: nothing runs until the first next()
    worker = _Worker()
    finished = object()
    reading = False
    try:
        while True:
            reading = True
            item = await worker.call(lambda: next(iterator, finished))
            reading = False
            if item is finished:
                return
            yield item  # type: ignore[misc]
    finally:
        close = getattr(iterator, "close", None)
        if reading:
            interrupter.fire()
            if close is not None:
                worker.call(close)
        elif close is not None:
            await worker.call(close)
        worker.stop()


def _iterate_in_loop_thread(make: Callable[[], AsyncIterator[_T]]) -> Iterator[_T]:
    """Drive an async iterator from sync code, even when called inside a running event loop.

    The iterator runs on a private event loop in a daemon thread; each item is fetched with
    ``run_coroutine_threadsafe``. Closing the returned generator closes the async one too; when
    that happens while an item is still being fetched (Ctrl-C in the waiting thread), the fetch
    is cancelled first, so the async iterator's own cleanup runs (its connection is closed).
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="tapedeck-bridge", daemon=True)
    thread.start()
    try:
        agen = make()
        fetch = _Fetch()
        try:
            while True:
                future = asyncio.run_coroutine_threadsafe(fetch.next_or_stop(agen), loop)
                done, item = future.result()
                if done:
                    return
                yield item  # type: ignore[misc]
        finally:
            asyncio.run_coroutine_threadsafe(fetch.close(agen), loop).result(timeout=30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


class _Fetch:
    """Fetches the items of an async iterator one call at a time, and can close it mid-fetch."""

    def __init__(self) -> None:
        self._task: asyncio.Task[Any] | None = None

    async def next_or_stop(self, agen: AsyncIterator[_T]) -> tuple[bool, _T | None]:
        self._task = asyncio.current_task()
        try:
            return False, await agen.__anext__()
        except StopAsyncIteration:
            return True, None

    async def close(self, agen: AsyncIterator[Any]) -> None:
        task = self._task
        if task is not None and not task.done():
            # aclose() on a generator that is still inside __anext__ raises "already running";
            # cancelling the fetch unwinds the generator through its own finally blocks instead.
            task.cancel()
            await asyncio.wait([task])
        aclose = getattr(agen, "aclose", None)
        if aclose is not None:
            await aclose()
