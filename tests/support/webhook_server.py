"""A webhook receiver on 127.0.0.1 for the alert tests: records each request, may hang.

A real ``http.server`` in a thread (the Notifier speaks HTTP to it as to any webhook).
``hang`` makes every request wait that long before answering (a webhook that hangs),
``status`` is the answer code (500: a failing endpoint). ``stop`` releases hung handlers.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.request import urlopen


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    body: Any  # parsed JSON, or None for a body-less request


class WebhookServer:
    """Records requests; ``url(path)`` is where to send them."""

    def __init__(self, *, hang: float = 0.0, status: int = 200) -> None:
        self.hang = hang
        self.status = status
        self.received: list[Received] = []
        self._release = threading.Event()
        self._lock = threading.Condition()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if server.hang:
                    server._release.wait(server.hang)
                with server._lock:
                    body = json.loads(raw) if raw else None
                    server.received.append(Received(method, self.path, body))
                    server._lock.notify_all()
                self.send_response(server.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                self._handle("POST")

            def do_GET(self) -> None:
                self._handle("GET")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_for(
        self, count: int, timeout: float = 10.0, path: str | None = None
    ) -> list[Received]:
        """The first ``count`` requests (to ``path`` if given); fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                got = [r for r in self.received if path is None or r.path == path]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                assert left > 0, f"expected {count} requests, got {got}"
                self._lock.wait(left)

    def stop(self) -> None:
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()


@contextmanager
def webhook_server(*, hang: float = 0.0, status: int = 200) -> Iterator[WebhookServer]:
    server = WebhookServer(hang=hang, status=status)
    try:
        yield server
    finally:
        server.stop()


def scrape(url: str) -> dict[str, float]:
    """GET a Prometheus text page: {"name{labels}": value} for every sample line."""
    with urlopen(url, timeout=10) as answer:  # 127.0.0.1 only
        text = answer.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def sample(samples: dict[str, float], name: str, **labels: str) -> float | None:
    """The value of the one series ``name`` whose labels include ``labels`` (None if absent)."""
    found = [
        v
        for k, v in samples.items()
        if k.split("{")[0] == name and all(f'{lk}="{lv}"' in k for lk, lv in labels.items())
    ]
    assert len(found) <= 1, f"{name} {labels}: several series {found}"
    return found[0] if found else None
