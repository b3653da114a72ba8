"""Run only the latest request, after a quiet time: what a slider needs when each move starts seconds of work.

Plain Python (no ipywidgets), so it is tested with a hand-driven clock and executor instead of sleeps. Each
:meth:`LatestOnly.request` gets a generation number; its timer fires after ``debounce`` seconds and hands the work
to one worker, which skips it when a newer request came in meanwhile. The work itself gets ``is_current`` to drop
a result that went stale while it ran, and may publish several results (a quick one, then a refined one).
Timers are never cancelled, only outdated: every request is accounted for exactly once, so :meth:`wait` knows
when nothing is left.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

log = logging.getLogger(__name__)

#: ``work(payload, is_current)``: do the request; call ``is_current()`` before publishing anything.
Work = Callable[[Any, Callable[[], bool]], None]


class CallLater(Protocol):
    def __call__(self, delay: float, fn: Callable[[], None]) -> object: ...


class Submit(Protocol):
    def __call__(self, fn: Callable[[], None]) -> object: ...


def thread_timer(delay: float, fn: Callable[[], None]) -> threading.Timer:
    """The real clock: ``fn`` on a daemon timer thread after ``delay`` seconds."""
    timer = threading.Timer(delay, fn)
    timer.daemon = True
    timer.start()
    return timer


def run_now(fn: Callable[[], None]) -> None:
    """An executor that runs the work in the calling thread (scripts and tests without threads)."""
    fn()


class LatestOnly:
    """``LatestOnly(work, debounce=0.05)``; :meth:`request` (payload) from any thread, :meth:`wait` to block.

    ``call_later`` and ``submit`` default to a timer thread and one worker thread; pass others to drive time by
    hand. ``debounce=0`` starts at once (in the calling thread when ``submit`` is :func:`run_now`).
    ``on_error(exc)`` gets what ``work`` raised (default: logged).
    """

    def __init__(self, work: Work, *, debounce: float = 0.0, call_later: CallLater | None = None,
                 submit: Submit | None = None, on_error: Callable[[BaseException], None] | None = None) -> None:
        self.work, self.debounce = work, float(debounce)
        self._call_later = call_later or thread_timer
        self._executor = None
        if submit is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="facecluster-latest")
            submit = self._executor.submit
        self._submit = submit
        self.on_error = on_error
        self._lock = threading.Condition()
        self._generation = 0
        self._payload: Any = None
        self._outstanding = 0
        self.started = 0  # requests whose work ran (the others were superseded before they started)

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def idle(self) -> bool:
        """No request waiting for its timer, queued or running."""
        with self._lock:
            return self._outstanding == 0

    def request(self, payload: Any = None) -> int:
        """Ask for ``payload`` to be worked on; supersedes every earlier request. Returns its generation."""
        with self._lock:
            self._generation += 1
            generation = self._generation
            self._payload = payload
            self._outstanding += 1
        if self.debounce > 0:
            self._call_later(self.debounce, lambda: self._due(generation))
        else:
            self._due(generation)
        return generation

    def is_current(self, generation: int) -> bool:
        return generation == self._generation

    def _due(self, generation: int) -> None:
        if not self.is_current(generation):
            self._done()
            return
        try:
            self._submit(lambda: self._execute(generation))
        except RuntimeError:  # the executor was shut down
            self._done()

    def _execute(self, generation: int) -> None:
        try:
            with self._lock:
                current, payload = generation == self._generation, self._payload
            if current:
                self.started += 1
                self.work(payload, lambda: self.is_current(generation))
        except Exception as exc:
            if self.on_error is not None:
                self.on_error(exc)
            else:
                log.warning("background work failed: %s", exc)
        finally:
            self._done()

    def _done(self) -> None:
        with self._lock:
            self._outstanding -= 1
            self._lock.notify_all()

    def wait(self, timeout: float | None = 120.0) -> bool:
        """Block until every request is done or superseded; ``False`` when ``timeout`` ran out first."""
        with self._lock:
            return self._lock.wait_for(lambda: self._outstanding == 0, timeout)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
