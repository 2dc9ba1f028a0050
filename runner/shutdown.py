"""Signal handling for the foreground runner (README, "Lifecycle").

The first SIGINT/SIGTERM asks for a graceful stop (the loop ends, the container is
stopped and removed, volumes are released); a second one raises ``ForcedExit`` from
wherever the runner is, abandoning that graceful stop.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ForcedExit(KeyboardInterrupt):
    """A second stop signal: cleanup was abandoned (the next start sweeps leftovers)."""


@contextlib.contextmanager
def stop_signals(request_stop: Callable[[], None], log: logging.Logger) -> Iterator[None]:
    """Route SIGINT/SIGTERM to ``request_stop`` (first) and ``ForcedExit`` (second).

    Only the main thread may install handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    count = 0

    def handler(signum: int, _frame: FrameType | None) -> None:
        nonlocal count
        count += 1
        name = signal.Signals(signum).name
        if count == 1:
            log.info("%s received: stopping (send it again to force exit)", name)
            request_stop()
            return
        log.warning("%s received again: forcing exit, cleanup abandoned", name)
        raise ForcedExit(name)

    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
