"""The journal on its own: snapshots, raw headers decoded when read, stale tickets, threads."""

from __future__ import annotations

import collections
import threading

from fake_upstreams.journal import Journal, Verdict, accepted
from fake_upstreams.script import ResponseScript
from providers.wire.common import ChatRequest

RAW = ((b"Host", b"127.0.0.1"), (b"X-Caf\xe9", b"cr\xe8me \xff"), (b"host", b"again"))
CHAT = ChatRequest("m", ({"role": "user", "content": "hi"},), plaintext=b"{}")


def test_raw_headers_read_as_latin_1_in_order_and_case() -> None:
    journal = Journal()
    journal.open_raw("POST", "/api/chat", RAW, b"body")
    entry = journal.last
    assert entry.headers == (
        ("Host", "127.0.0.1"),
        ("X-Caf\u00e9", "cr\u00e8me \u00ff"),
        ("host", "again"),
    )
    assert entry.header("HOST") == "127.0.0.1"
    assert (entry.method, entry.path, entry.body, entry.outcome) == (
        "POST",
        "/api/chat",
        b"body",
        "pending",
    )


def test_open_with_text_headers_and_open_raw_give_the_same_entry() -> None:
    text = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in RAW]
    by_text, by_bytes = Journal(), Journal()
    by_text.open("GET", "/", text, b"")
    by_bytes.open_raw("GET", "/", RAW, b"")
    assert by_text.last.headers == by_bytes.last.headers
    assert by_text.last.to_json()["headers"] == by_bytes.last.to_json()["headers"]


def test_snapshots_do_not_change_when_the_request_goes_on() -> None:
    journal = Journal()
    ticket = journal.open_raw("POST", "/", RAW, b"")
    arrived = journal.last
    assert journal.last is arrived  # nothing changed: the same snapshot
    script = ResponseScript(text="x")
    journal.judge(ticket, Verdict(True, 200), chat=CHAT, script=script)
    judged = journal.last
    journal.finish(ticket, "completed")
    done = journal.entries[0]
    assert (arrived.outcome, arrived.verdict, arrived.chat) == ("pending", None, None)
    assert (judged.outcome, judged.chat, judged.plaintext, judged.script) == (
        "pending",
        CHAT,
        b"{}",
        script,
    )
    assert (done.outcome, done.verdict) == ("completed", Verdict(True, 200))


def test_rejections_and_handler_errors_are_recorded() -> None:
    journal = Journal()
    rejected = journal.open("POST", "/", [], b"")
    failed = journal.open("POST", "/x", [], b"")
    journal.judge(rejected, Verdict(False, 400, "bad", "no"))
    journal.fail(failed, RuntimeError("boom"))
    first, second = journal.entries
    assert (first.outcome, first.verdict) == ("rejected", Verdict(False, 400, "bad", "no"))
    assert (second.outcome, second.error) == ("handler-error", "RuntimeError: boom")
    assert journal.to_json()["errors"] == ["request #1 POST /x: RuntimeError: boom"]


def test_outcome_counts_agree_with_the_entries() -> None:
    journal = Journal()
    assert journal.outcome_counts() == {}
    done, rejected, _still_running = (journal.open("POST", "/", [], b"") for _ in range(3))
    journal.finish(done, "completed")
    journal.judge(rejected, Verdict(False, 400))
    counts = journal.outcome_counts()
    assert counts == {"completed": 1, "rejected": 1, "pending": 1}
    assert counts == dict(collections.Counter(entry.outcome for entry in journal.entries))
    journal.clear()
    assert journal.outcome_counts() == {}


def test_tickets_from_before_a_clear_change_nothing_after_it() -> None:
    journal = Journal()
    stale = journal.open("POST", "/old", [], b"")
    journal.clear()
    fresh = journal.open("POST", "/new", [], b"")
    journal.finish(stale, "completed")
    journal.judge(stale, Verdict(False, 400))
    journal.fail(stale, ValueError("late"))
    assert [(entry.index, entry.path, entry.outcome) for entry in journal.entries] == [
        (0, "/new", "pending")
    ]
    assert journal.to_json()["errors"] == ["a request from before the last reset: ValueError: late"]
    journal.finish(fresh, "completed")
    assert journal.last.outcome == "completed"


def test_writers_and_readers_on_threads_see_consistent_entries() -> None:
    journal = Journal()
    per_writer = 300
    seen_bad: list[str] = []

    def writer() -> None:
        for _ in range(per_writer):
            ticket = journal.open_raw("POST", "/", RAW, b"")
            journal.judge(ticket, Verdict(True, 200), chat=CHAT)
            journal.finish(ticket, "completed")

    def reader() -> None:
        for _ in range(200):
            for entry in journal.entries:
                if entry.outcome == "completed" and entry.verdict != Verdict(True, 200):
                    seen_bad.append(repr(entry))

    threads = [threading.Thread(target=writer) for _ in range(3)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entries = journal.entries
    assert seen_bad == []
    assert len(entries) == 3 * per_writer
    assert [entry.index for entry in entries] == list(range(3 * per_writer))
    assert {entry.outcome for entry in entries} == {"completed"}


def test_clears_racing_a_writer_keep_every_later_request_whole() -> None:
    """Writes take no lock: across clears at any moment, entries stay whole and in order.

    A request opened after ``clear()`` returned must be kept; one racing the clear may go either
    way, but never in part. The writer notes which clear it had seen before opening a request.
    """
    journal = Journal()
    requests = 20_000
    cleared = [0]  # how many clears had returned; read by the writer before each open
    done = threading.Event()

    def writer() -> None:
        for number in range(requests):
            seen = cleared[0]
            ticket = journal.open_raw("POST", "/", RAW, f"{number}:{seen}".encode())
            journal.judge(ticket, Verdict(True, 200), chat=CHAT)
            journal.finish(ticket, "completed")
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    while not done.is_set():
        journal.clear()
        cleared[0] += 1
        len(journal)  # a fold between the clears, racing the writer too
    thread.join()
    entries = journal.entries
    pairs = [tuple(map(int, entry.body.split(b":"))) for entry in entries]
    numbers = [number for number, _ in pairs]
    assert cleared[0] > 1
    # What survives the last clear is a tail of the requests: no gap, nothing older mixed in ...
    assert numbers == list(range(requests - len(numbers), requests))
    # ... that holds every request opened after the last clear returned ...
    after_last_clear = sum(1 for _, seen in pairs if seen == cleared[0])
    first_after = next((n for n, seen in pairs if seen == cleared[0]), requests)
    assert after_last_clear == requests - first_after
    # ... each one whole.
    assert [entry.index for entry in entries] == list(range(len(entries)))
    assert all(
        (entry.verdict, entry.chat, entry.outcome) == (Verdict(True, 200), CHAT, "completed")
        for entry in entries
    )


def test_accepted_verdicts_are_shared_and_equal_to_fresh_ones() -> None:
    assert accepted(201) == Verdict(True, 201)
    assert accepted(201) is accepted(201)
    odd = accepted(200.0)  # type: ignore[arg-type]  # a status of another type keeps its type
    assert odd.to_json()["status"] == 200.0
    assert type(odd.status) is float
