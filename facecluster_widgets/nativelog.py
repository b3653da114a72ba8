"""Keep the C++ log lines of native libraries away from the user, without losing a real error.

mediapipe's TensorFlow Lite and absl write straight to file descriptor 2 when a graph is built and on its first
frames ("All log messages before absl::InitializeLog() ...", "Feedback manager requires a model ...", "Created
TensorFlow Lite XNNPACK delegate ...", "Using NORM_RECT without IMAGE_DIMENSIONS ..."); Python's ``logging`` and
``warnings`` never see them. Measured with mediapipe 0.10.21: ``GLOG_minloglevel`` / ``TF_CPP_MIN_LOG_LEVEL`` set
before the import silence none of them; redirecting fd 2 around the graph's creation alone misses the lines of the
first frames; redirecting it around creation and every call until the graph has produced a face silences all.
So the graphs run under :func:`filtered_native_stderr` until then: known noise is dropped (logged at DEBUG), any
other line goes to this package's logger as a warning.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

#: Substrings of native log lines that say nothing a user can act on.
NOISE = (
    "All log messages before absl::InitializeLog()",
    "Feedback manager requires a model with a single signature",
    "Created TensorFlow Lite XNNPACK delegate",
    "Using NORM_RECT without IMAGE_DIMENSIONS",
)
#: fd 2 belongs to the whole process: one redirection at a time.
_FD2 = threading.RLock()


@contextmanager
def filtered_native_stderr() -> Iterator[None]:
    """Capture what native code writes to fd 2 inside the block; drop :data:`NOISE`, log every other line."""
    with _FD2:
        try:
            saved = os.dup(2)
        except OSError:  # no fd 2 at all (a detached process): nothing to filter
            yield
            return
        with tempfile.TemporaryFile() as capture:
            sys.stderr.flush()
            os.dup2(capture.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                capture.seek(0)
                text = capture.read().decode("utf-8", errors="replace")
    for line in text.splitlines():
        if any(noise in line for noise in NOISE):
            log.debug("native: %s", line)
        elif line.strip():
            log.warning("native: %s", line)
