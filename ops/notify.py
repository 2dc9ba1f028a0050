"""Notifier: alert webhooks and the heartbeat, sent off the sync tick.

README, "Metrics and alerts" documents the keys and the payload.

The sync tick only queues: ``on_event`` and ``on_cycle_ok`` put a job on a bounded queue
and return at once; one daemon thread sends the jobs, each with ``NOTIFY.TIMEOUT`` per
socket operation, so a webhook that hangs delays other alerts, never a tick. A full
queue drops the new job (logged once until the queue drains). A failing endpoint is
logged once when it starts failing and once when it works again, not per call, and only
by scheme and host: webhook URLs carry their secret in the path or query.

Payload (JSON POST): event, instance, key, node, role, cid, version, stage, error,
timestamp (seconds), time (UTC ISO 8601) and text (one line for chat webhooks). The
heartbeat is a GET of ``HEARTBEAT_URL`` after each successful tick cycle; one is queued at
most at a time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from ..sync import events as E
from ..sync.events import SyncEvent, SyncState
from ..timestamps import utc_iso
from .config import NotifyConfig, redact_endpoint

_log = logging.getLogger(__name__)

QUEUE_SIZE = 100
SUCCESS_EVENTS = frozenset({E.EVENT_PUBLISHED, E.EVENT_APPLIED})
USER_AGENT = "car-notify"


@dataclass(frozen=True, slots=True)
class _Job:
    url: str
    body: bytes | None  # None: the heartbeat's GET


class Notifier:
    """The ``SyncEvents`` observer that posts alerts and pings the heartbeat."""

    def __init__(
        self,
        cfg: NotifyConfig,
        *,
        instance_id: str,
        node_id: str,
        log: logging.Logger = _log,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self._cfg = cfg
        self._instance = instance_id
        self._node = node_id
        self._log = log
        self._jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=queue_size)
        self._failing: set[str] = set()  # endpoints whose last call failed
        self._full_logged = False
        self._heartbeat_queued = threading.Event()
        self._deadline: float | None = None  # set by close()
        self._thread = threading.Thread(target=self._run, name=f"car-notify-{instance_id}")
        self._thread.daemon = True  # a hung call never holds up the process's exit
        self._thread.start()

    # --- SyncEvents (the tick's side: queue and return) ---------------------------------
    def on_event(self, event: SyncEvent) -> None:
        if event.event in SUCCESS_EVENTS and not self._cfg.on_success:
            return
        body = json.dumps(self.payload(event)).encode()
        for url in self._cfg.urls:
            self._put(_Job(url, body))

    def on_state(self, state: SyncState) -> None:
        pass

    def on_cycle_ok(self, now: float) -> None:
        url = self._cfg.heartbeat_url
        if url is None or self._heartbeat_queued.is_set():
            return
        self._heartbeat_queued.set()
        if not self._put(_Job(url, None)):
            self._heartbeat_queued.clear()

    def payload(self, event: SyncEvent) -> dict[str, Any]:
        """The JSON body of an alert (README, "Metrics and alerts")."""
        when = utc_iso(event.timestamp)
        return {
            "event": event.event,
            "instance": self._instance,
            "key": event.key,
            "node": self._node,
            "role": event.role,
            "cid": event.cid,
            "version": event.version,
            "stage": event.stage,
            "error": event.error,
            "timestamp": event.timestamp,
            "time": when.replace("+00:00", "Z"),
            "text": self._text(event),
        }

    def _text(self, event: SyncEvent) -> str:
        what = f"car {self._instance} ({event.role}, key {event.key}): {event.event}"
        if event.cid:
            what += f" {event.cid}"
        if event.stage:
            what += f" at {event.stage}"
        return f"{what}: {event.error}" if event.error else what

    def _put(self, job: _Job) -> bool:
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            if not self._full_logged:
                self._log.warning("alert queue full (%d): alerts dropped", self._jobs.maxsize)
                self._full_logged = True
            return False
        return True

    # --- the sender thread ------------------------------------------------------------------
    def close(self, timeout: float = 1.0) -> None:
        """Stop the sender: queued jobs are sent until ``timeout``, then dropped unlogged.

        A call still hanging then is abandoned (the thread is a daemon): nothing of a
        stopped runner goes on sending or logging.
        """
        self._deadline = time.monotonic() + timeout
        with contextlib.suppress(queue.Full):
            self._jobs.put(None, timeout=timeout)
        self._thread.join(timeout)

    def _closed(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _run(self) -> None:
        while not self._closed():
            job = self._jobs.get()
            if job is None:
                return
            if job.body is None:
                self._heartbeat_queued.clear()
            self._send(job)
            if self._jobs.empty():
                self._full_logged = False

    def _send(self, job: _Job) -> None:
        headers = {"User-Agent": USER_AGENT}
        if job.body is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(
            job.url, data=job.body, headers=headers, method="POST" if job.body else "GET"
        )
        try:
            with urllib.request.urlopen(request, timeout=self._cfg.timeout) as answer:
                answer.read(64 * 1024)
        except Exception as exc:  # any failure of one call is the endpoint's state, not a crash
            self._failed(job.url, exc)
        else:
            self._ok(job.url)

    def _failed(self, url: str, exc: BaseException) -> None:
        if url in self._failing or self._closed():
            return
        self._failing.add(url)
        reason = str(exc).replace(url, redact_endpoint(url)) or type(exc).__name__
        self._log.warning(
            "alert endpoint %s failed (logged once until it works again): %s",
            redact_endpoint(url),
            reason,
        )

    def _ok(self, url: str) -> None:
        if url in self._failing and not self._closed():
            self._failing.discard(url)
            self._log.info("alert endpoint %s works again", redact_endpoint(url))
