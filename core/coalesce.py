"""Writes that many requests of one process each need at the same moment, made together: one
statement and one commit for all of them instead of one each (group commit, done by the
client).

``Coalescer.submit(item)`` is called by each request thread. When no other thread is writing,
the caller writes at once, alone, on its own connection, exactly as it would without this.
When one is, the caller waits: the writing thread (the leader), once its batch is committed,
hands the lead to the first thread that waited, which writes every item waiting by then (up
to its ``max_batch``) with one call of ``write_batch``, and so on. Nothing waits for a batch to
fill, and no thread of its own is needed: a quiet server answers as before, and a busy one
shares each round trip and each commit among the requests that arrived together.

An answer is given only once its batch is committed, so a request answers success only for
what is stored. A request whose item was not written within ``timeout`` seconds gets
``CoalescerTimeout``: if its item was still waiting it is withdrawn (nothing stored), if it was
being written the outcome is unknown; either way the caller answers an error and the sender's
retry finds the item stored, or stores it.

Only for writes that commit on their own (autocommit): a caller inside a transaction must
write its item itself, or the item would be committed with other requests' items whatever
became of its own transaction.
"""

import os
import threading
from collections.abc import Callable, Sequence


class CoalescerTimeout(Exception):
    """The item was not written in time; it may or may not be stored."""


class _Slot:
    __slots__ = ("item", "done", "lead", "result", "error")

    def __init__(self, item):
        self.item = item
        self.done = threading.Event()
        self.lead = False  # set (with ``done``) when this thread is handed the lead
        self.result = None
        self.error: BaseException | None = None


class Coalescer:
    """Batches of items written by whichever of the waiting request threads leads.

    ``write_batch(items)`` writes every item and returns one result per item, in order; a
    result that is an exception is raised in that item's request instead. If it raises, every
    item of the batch gets that exception."""

    def __init__(self, write_batch: Callable[[Sequence], Sequence], *, name: str):
        self._write_batch = write_batch
        self._name = name
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        # A forked child starts with nobody writing and nothing waiting.
        self._lock = threading.Lock()
        self._waiting: list[_Slot] = []
        self._leading = False

    def submit(self, item, *, timeout: float, max_batch: int = 64):
        """Write ``item`` with whatever else is waiting; its result once committed. When this
        caller writes, it writes at most ``max_batch`` items."""
        slot = _Slot(item)
        with self._lock:
            self._waiting.append(slot)
            leads = not self._leading
            self._leading = True
        if not leads and not self._follow(slot, timeout):
            return self._outcome(slot)
        self._lead(max_batch)
        return self._outcome(slot)

    def _follow(self, slot: _Slot, timeout: float) -> bool:
        """Wait for ``slot`` to be written (False) or for the lead (True)."""
        slot.done.wait(timeout)
        with self._lock:
            if slot.lead:
                return True
            if slot.done.is_set():
                return False
            if slot in self._waiting:
                self._waiting.remove(slot)
                raise CoalescerTimeout(
                    f"the {self._name} write waited {timeout:g} s for its turn; nothing stored"
                )
        raise CoalescerTimeout(
            f"the {self._name} write took more than {timeout:g} s; it may be stored"
        )

    def _lead(self, max_batch: int) -> None:
        """Write the waiting items (the leader's own first among them), then hand the lead
        to the first item that came meanwhile, or let it go."""
        with self._lock:
            limit = max(1, max_batch)
            batch, self._waiting = self._waiting[:limit], self._waiting[limit:]
        try:
            self._write(batch)
        finally:
            with self._lock:
                if self._waiting:
                    following = self._waiting[0]
                    following.lead = True
                    following.done.set()
                else:
                    self._leading = False

    def _write(self, batch: list[_Slot]) -> None:
        try:
            results = self._write_batch([slot.item for slot in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for {len(batch)} items")
        except Exception as exc:  # every request of the batch hears of it
            results = [exc] * len(batch)
        for slot, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                slot.error = result
            else:
                slot.result = result
            slot.lead = False  # the leader's own slot may have been handed the lead
            slot.done.set()

    @staticmethod
    def _outcome(slot: _Slot):
        if slot.error is not None:
            raise slot.error
        return slot.result
