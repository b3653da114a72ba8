"""Native log lines: known noise is dropped, anything else reaches the logger, and fd 2 is given back."""

from __future__ import annotations

import logging
import os

from facecluster_widgets.nativelog import NOISE, filtered_native_stderr


def test_noise_is_dropped_and_other_native_lines_are_logged(capfd, caplog):
    caplog.set_level(logging.DEBUG, logger="facecluster_widgets.nativelog")
    with filtered_native_stderr():
        os.write(2, f"W0000 00:00 123 inference_feedback_manager.cc:114] {NOISE[1]} model.\n".encode())
        os.write(2, b"E0000 something the user must see\n")
    os.write(2, b"after the block\n")
    assert capfd.readouterr().err == "after the block\n"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["native: E0000 something the user must see"]
    assert any(NOISE[1] in r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG)


def test_fd2_is_restored_when_the_block_raises(capfd):
    try:
        with filtered_native_stderr():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    os.write(2, b"still here\n")
    assert capfd.readouterr().err == "still here\n"


def test_threads_take_turns_and_fd2_comes_back(capfd, caplog):
    import threading

    caplog.set_level(logging.WARNING, logger="facecluster_widgets.nativelog")

    def write(i: int) -> None:
        for _ in range(20):
            with filtered_native_stderr():
                os.write(2, f"thread {i}\n".encode())

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    os.write(2, b"back\n")
    assert capfd.readouterr().err == "back\n"
    assert sorted({r.getMessage() for r in caplog.records}) == [f"native: thread {i}" for i in range(4)]
    assert len(caplog.records) == 80
