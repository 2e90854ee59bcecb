"""SIGINT and SIGTERM during training: the first asks the run to stop at the end of the step
(it then saves a checkpoint), a second stops it at once. During a checkpoint write nothing
cuts in: signals are noted and acted on after it (a KeyboardInterrupt inside torch.save
surfaced as an internal RuntimeError, and the default SIGTERM action left the temp file).
"""
from __future__ import annotations

import contextlib
import signal
import threading

HANDLED = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    def __init__(self):
        self.requested: int | None = None       # the first signal
        self.during_save: int | None = None     # a second one, while a checkpoint was written

    @contextlib.contextmanager
    def watching(self):
        """While training: note the first signal; a second raises KeyboardInterrupt."""
        def request_stop(signum, frame):
            if self.requested is not None:
                raise KeyboardInterrupt
            self.requested = signum
        with _handlers(request_stop):
            yield

    @contextlib.contextmanager
    def deferred(self):
        """While a checkpoint is written: note signals, raise nothing."""
        self.during_save = None

        def note(signum, frame):
            if self.requested is None:
                self.requested = signum
            else:
                self.during_save = signum
        with _handlers(note):
            yield


@contextlib.contextmanager
def _handlers(handler):
    """``handler`` for SIGINT and SIGTERM (only the main thread may set them)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in HANDLED}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
