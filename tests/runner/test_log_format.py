"""Log lines of a runner name its instance, as text or JSON (README, "Logs and output")."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest
from container_apps.retry_policy import RetryPolicy
from container_apps.runner.log_format import install, utc_iso_ms


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _log_everywhere() -> None:
    """A runner logger, a module logger in a worker thread, a retry and an exception."""
    logging.getLogger("car.web").info("container car-web started")
    worker = threading.Thread(
        target=lambda: logging.getLogger("container_apps.stores.progress").info("50 %")
    )
    worker.start()
    worker.join()
    from container_apps.errors import TransientError

    attempts = iter([TransientError("down"), None])

    def flaky() -> None:
        error = next(attempts)
        if error:
            raise error

    RetryPolicy(sleep=lambda _s: None).call(flaky, what="hget from redis://127.0.0.1:1")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("container_apps.sync.manager").exception("tick failed")


def test_every_text_line_names_the_instance_and_a_utc_time(restore_logging: None) -> None:
    out = io.StringIO()
    install("DEBUG", "text", "web", out)
    _log_everywhere()
    lines = [ln for ln in out.getvalue().splitlines() if not ln.startswith(("Traceback", " "))]
    events = [ln for ln in lines if ln[:4].isdigit()]
    assert len(events) == 4, lines
    assert all(" [web]: " in ln for ln in events), events
    assert all(ln[10] == "T" and ln.split()[0].endswith("Z") for ln in events)
    assert any(
        "retrying in" in ln and "DEBUG container_apps.retry_policy [web]" in ln for ln in events
    )


def test_json_is_one_object_per_line_with_the_instance_and_the_traceback(
    restore_logging: None,
) -> None:
    out = io.StringIO()
    install("DEBUG", "json", "web", out)
    _log_everywhere()
    entries = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(entries) == 4
    assert {e["instance"] for e in entries} == {"web"}
    assert all(set(e) >= {"ts", "level", "logger", "instance", "message"} for e in entries)
    assert [e["logger"] for e in entries][:2] == ["car.web", "container_apps.stores.progress"]
    failed = entries[-1]
    assert failed["level"] == "ERROR" and failed["message"] == "tick failed"
    assert "ValueError: boom" in failed["exc_info"]


def test_utc_iso_time_has_milliseconds_and_z() -> None:
    assert utc_iso_ms(1796140000.25) == "2026-12-01T15:46:40.250Z"
