"""Writes made together: whoever arrives while another thread writes waits for the next batch,
written by one of the waiting threads; each caller gets its own item's outcome."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from core.coalesce import Coalescer, CoalescerTimeout


class Writes:
    """A ``write_batch`` that records each batch and the thread that wrote it; the first
    batch holds until ``release`` is set, so others can arrive meanwhile."""

    def __init__(self, *, fail_first: bool = False, hold_first: bool = True):
        self.batches: list[list] = []
        self.threads: list[int] = []
        self.release = threading.Event()
        self.started = threading.Event()
        self.fail_first = fail_first
        if not hold_first:
            self.release.set()

    def __call__(self, items):
        first = not self.batches
        self.batches.append(list(items))
        self.threads.append(threading.get_ident())
        if first:
            self.started.set()
            assert self.release.wait(10)
            if self.fail_first:
                raise RuntimeError("the database refused the batch")
        return [
            ValueError(f"{item} refused") if item == "bad" else f"{item} stored" for item in items
        ]


def waiting(coalescer: Coalescer, count: int) -> None:
    """Until ``count`` items wait for the next batch."""
    deadline = time.monotonic() + 10
    while len(coalescer._waiting) < count:
        assert time.monotonic() < deadline, "the items never arrived"
        time.sleep(0.005)


def outcome(coalescer: Coalescer, item, timeout: float = 10, max_batch: int = 64):
    try:
        return coalescer.submit(item, timeout=timeout, max_batch=max_batch)
    except Exception as exc:  # noqa: BLE001 - the test compares what each caller got
        return exc


def meanwhile(coalescer: Coalescer, writes: Writes, items, *, max_batch: int = 64):
    """Submit "first", then ``items`` one after the other while its write holds; then let it
    go. What each caller got: "first"'s outcome, then the others' in order."""
    with ThreadPoolExecutor(len(items) + 1) as pool:
        first = pool.submit(outcome, coalescer, "first", max_batch=max_batch)
        assert writes.started.wait(10)
        later = []
        for item in items:
            later.append(pool.submit(outcome, coalescer, item, max_batch=max_batch))
            waiting(coalescer, len(later))  # queued in this order
        writes.release.set()
        return first.result(), [f.result() for f in later]


def test_a_caller_alone_writes_its_item_at_once_on_its_own_thread():
    writes = Writes(hold_first=False)
    coalescer = Coalescer(writes, name="test")

    assert coalescer.submit("a", timeout=1) == "a stored"
    assert coalescer.submit("b", timeout=1) == "b stored"
    assert writes.batches == [["a"], ["b"]]
    assert writes.threads == [threading.get_ident()] * 2


def test_items_arriving_during_a_write_are_written_together_by_one_of_their_callers():
    writes = Writes()
    coalescer = Coalescer(writes, name="test")

    first, later = meanwhile(coalescer, writes, ["b", "c", "d", "e", "f"])

    assert [first, *later] == [f"{name} stored" for name in ("first", "b", "c", "d", "e", "f")]
    assert writes.batches == [["first"], ["b", "c", "d", "e", "f"]]
    assert writes.threads[1] != writes.threads[0]  # the first waiting caller wrote the batch


def test_a_batch_is_at_most_its_writers_max_batch_items():
    writes = Writes()
    coalescer = Coalescer(writes, name="test")

    first, later = meanwhile(coalescer, writes, ["b", "c", "d", "e", "f"], max_batch=2)

    assert [first, *later] == [f"{name} stored" for name in ("first", "b", "c", "d", "e", "f")]
    assert writes.batches == [["first"], ["b", "c"], ["d", "e"], ["f"]]


def test_a_failed_batch_fails_its_own_callers_and_the_next_batch_is_still_written():
    writes = Writes(fail_first=True)
    coalescer = Coalescer(writes, name="test")

    failed, later = meanwhile(coalescer, writes, ["b", "c"])

    assert isinstance(failed, RuntimeError) and "refused the batch" in str(failed)
    assert later == ["b stored", "c stored"]
    assert writes.batches == [["first"], ["b", "c"]]
    assert coalescer.submit("g", timeout=1) == "g stored"  # nobody is left holding the lead


def test_an_item_the_write_refuses_fails_alone():
    writes = Writes()
    coalescer = Coalescer(writes, name="test")

    first, results = meanwhile(coalescer, writes, ["b", "bad", "c"])

    assert first == "first stored"
    assert results[0] == "b stored" and results[2] == "c stored"
    assert isinstance(results[1], ValueError) and str(results[1]) == "bad refused"


def test_an_item_not_written_in_time_is_withdrawn_and_never_written():
    writes = Writes()
    coalescer = Coalescer(writes, name="test")
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(outcome, coalescer, "first")
        assert writes.started.wait(10)
        with pytest.raises(CoalescerTimeout, match="nothing stored"):
            coalescer.submit("late", timeout=0.2)
        writes.release.set()
        assert first.result() == "first stored"

    assert coalescer.submit("next", timeout=1) == "next stored"
    assert writes.batches == [["first"], ["next"]]
