"""The explorer's scheduler without ipywidgets and without sleeps: a hand-driven clock and a hand-driven worker."""

from __future__ import annotations

import threading

from facecluster_widgets.widgets.scheduler import LatestOnly, run_now


class ManualClock:
    """``call_later`` whose timers fire only when the test advances time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, int, object]] = []

    def __call__(self, delay, fn):
        self.timers.append((self.now + delay, len(self.timers), fn))

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = sorted(t for t in self.timers if t[0] <= self.now)
        self.timers = [t for t in self.timers if t[0] > self.now]
        for _, _, fn in due:
            fn()


class ManualWorker:
    """An executor whose jobs run only when the test says so."""

    def __init__(self) -> None:
        self.jobs: list = []

    def __call__(self, fn):
        self.jobs.append(fn)

    def run_one(self) -> None:
        self.jobs.pop(0)()

    def run_all(self) -> None:
        while self.jobs:
            self.run_one()


def test_moves_within_the_quiet_time_run_once_with_the_last_value():
    clock, worker, ran = ManualClock(), ManualWorker(), []
    latest = LatestOnly(lambda p, current: ran.append(p), debounce=0.25, call_later=clock, submit=worker)
    for eps in (0.3, 0.35, 0.4):
        latest.request(eps)
        clock.advance(0.1)  # each move comes before the previous one's quiet time is over
    assert ran == [] and not latest.idle
    clock.advance(0.25)
    worker.run_all()
    assert ran == [0.4] and latest.started == 1 and latest.idle


def test_a_request_arriving_while_work_runs_marks_that_work_stale_and_runs_after_it():
    clock, worker, shown = ManualClock(), ManualWorker(), []
    requests: list = []

    def work(payload, is_current):
        if payload == "first":
            requests.append("second")  # the user moves the slider again while this one computes
            latest.request("second")
        if is_current():
            shown.append(payload)

    latest = LatestOnly(work, debounce=0.1, call_later=clock, submit=worker)
    latest.request("first")
    clock.advance(0.1)
    worker.run_all()
    assert shown == [] and requests == ["second"]  # the first result is dropped: the controls moved meanwhile
    clock.advance(0.1)
    worker.run_all()
    assert shown == ["second"] and latest.idle


def test_work_may_publish_a_quick_result_then_a_refined_one():
    shown = []

    def work(payload, is_current):
        for stage in ("quick", "refined"):
            if is_current():
                shown.append((payload, stage))

    latest = LatestOnly(work, submit=run_now)
    latest.request(1)
    assert shown == [(1, "quick"), (1, "refined")] and latest.idle


def test_errors_reach_the_handler_and_the_next_request_still_runs():
    errors, ran = [], []

    def work(payload, _current):
        if payload == "bad":
            raise ValueError("k above the faces DBSCAN keeps")
        ran.append(payload)

    latest = LatestOnly(work, submit=run_now, on_error=errors.append)
    latest.request("bad")
    latest.request("good")
    assert [str(e) for e in errors] == ["k above the faces DBSCAN keeps"] and ran == ["good"] and latest.idle


def test_wait_returns_when_the_real_threads_are_done():
    gate, ran = threading.Event(), []

    def work(payload, _current):
        gate.wait(30)
        ran.append(payload)

    latest = LatestOnly(work, debounce=0.0)
    latest.request("a")
    assert not latest.wait(timeout=0.0)  # blocked on the gate: not done yet
    gate.set()
    assert latest.wait(timeout=30) and ran == ["a"]
    latest.close()
