"""stop_signals: first SIGINT/SIGTERM asks for a stop, the second forces exit."""

from __future__ import annotations

import logging
import os
import signal
import threading

import pytest
from container_apps.runner.shutdown import ForcedExit, stop_signals

LOG = logging.getLogger("test.shutdown")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_requests_stop_second_forces_exit(sig: signal.Signals) -> None:
    before = signal.getsignal(sig)
    requested = threading.Event()
    with pytest.raises(ForcedExit), stop_signals(requested.set, LOG):
        os.kill(os.getpid(), sig)
        assert requested.wait(5)
        os.kill(os.getpid(), sig)
        threading.Event().wait(5)  # the handler raises while we wait
    assert signal.getsignal(sig) is before  # previous handler restored


def test_outside_the_main_thread_no_handler_is_installed() -> None:
    before = signal.getsignal(signal.SIGINT)
    seen: list[object] = []

    def body() -> None:
        with stop_signals(lambda: None, LOG):
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [before]
