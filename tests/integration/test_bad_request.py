"""Bad requests written from inside the app: failure artifacts, and the app keeps running.

``request.json.invalid`` + error ``response.json`` (exact shape, 0644, container paths
only: docs/FORMAT.md, "response.json and request.json.invalid"), the path rules
(docs/FORMAT.md, "Archive paths"), no container stop on a validation failure (README,
"Provider").
"""

from __future__ import annotations

import json
import stat
import time
from typing import Any

import pytest
from container_apps.tests.integration.conftest import (
    RunnerProcess,
    Runners,
    app_sh,
    assert_nothing_left,
    base_config,
    container_events,
    history,
    request_json,
    running_container,
    unique,
    wait_response,
    write_request_sh,
)

pytestmark = [pytest.mark.docker, pytest.mark.loopdev, pytest.mark.slow]

INVALID_KEYS = {"stage", "error", "failed_timestamp", "node_id"}
RESPONSE_KEYS = {"status", "stage", "error", "failed_timestamp", "archive_paths"}

# (request body as the app writes it, request_id echoed, archive_paths answered, error names)
BAD_REQUESTS = [
    (request_json(["/etc"], request_id="bad-etc"), "bad-etc", ["/etc"], "/etc"),
    (
        request_json(["/app/data/../../etc"], request_id="bad-dots"),
        "bad-dots",
        ["/app/data/../../etc"],
        "..",
    ),
    ('{"archive_paths": ["/app/data/"', None, [], "JSON"),
]


def ask(docker_client: Any, provider: RunnerProcess, body: str) -> dict[str, Any]:
    """As the app: clear the old answers, write ``body``, wait for the error response."""
    app_sh(
        docker_client,
        provider,
        "rm -f $R1_VOLUME_SYNC_DIR/response.json $R1_VOLUME_SYNC_DIR/request.json.invalid && "
        + write_request_sh(body),
    )
    return wait_response(provider, status="error")


def read_artifact(docker_client: Any, provider: RunnerProcess, name: str) -> dict[str, Any]:
    """A control file as the app reads it (inside the container); checks mode 0644."""
    path = provider.sync_dir / name
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    text = app_sh(docker_client, provider, f"cat $R1_VOLUME_SYNC_DIR/{name}")
    value = json.loads(text)
    assert isinstance(value, dict)
    return value


def test_bad_requests_get_invalid_and_error_response_without_stopping_the_app(
    runners: Runners, docker_client: Any
) -> None:
    key = unique("bad")
    data = runners.data_dir()
    provider = runners.start(base_config(unique("prov"), "provider", key))
    app_sh(docker_client, provider, "true")  # running
    container = running_container(docker_client, provider.container)
    assert container is not None
    since = time.time()

    for body, request_id, paths, names in BAD_REQUESTS:
        response = ask(docker_client, provider, body)
        expected_keys = RESPONSE_KEYS | ({"request_id"} if request_id else set())
        assert set(response) == expected_keys, response
        assert response["status"] == "error" and response["stage"] == "validation"
        assert response["archive_paths"] == paths
        assert response.get("request_id") == request_id
        assert isinstance(response["failed_timestamp"], float)
        assert names in response["error"]
        assert str(data) not in response["error"]  # container paths only

        invalid = read_artifact(docker_client, provider, "request.json.invalid")
        assert set(invalid) == {"request", "_error"}
        error = invalid["_error"]
        unparseable = request_id is None
        assert set(error) == INVALID_KEYS | ({"raw_body"} if unparseable else set())
        assert error["stage"] == "validation" and error["error"] == response["error"]
        assert error["failed_timestamp"] == response["failed_timestamp"]
        assert error["node_id"] == provider.config["NODE_ID"]
        if unparseable:
            assert invalid["request"] is None and error["raw_body"] == body
        else:
            assert invalid["request"]["request_id"] == request_id
        assert read_artifact(docker_client, provider, "response.json") == response
        left = {p.name for p in provider.sync_dir.iterdir()}
        assert left.isdisjoint({"request.json", "request.json.processing"})

    # Never stopped: the same container, with no lifecycle event since the first request.
    now = running_container(docker_client, provider.container)
    assert now is not None and now.id == container.id
    assert now.attrs["State"]["StartedAt"] == container.attrs["State"]["StartedAt"]
    events = container_events(docker_client, container.id, since)
    assert [e for e in events if not e.startswith("exec_")] == []  # only our docker execs
    assert history(provider.paths.history_sent) == []
    runners.stop_all()
    assert_nothing_left(docker_client, data)
