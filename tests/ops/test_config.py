"""METRICS_ADDR and NOTIFY in the runner config (README, "Metrics and alerts")."""

from __future__ import annotations

from typing import Any

import pytest
from container_apps.errors import ConfigError
from container_apps.ops.config import check_metrics_addr, redact_endpoint, split_metrics_addr
from container_apps.runner.runner_config import RunnerConfig

BASE: dict[str, Any] = {"INSTANCE_ID": "app1", "IMAGE": "busybox"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (":9310", ("127.0.0.1", 9310)),
        ("9310", ("127.0.0.1", 9310)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("0.0.0.0:9310", ("0.0.0.0", 9310)),
        ("[::1]:9310", ("::1", 9310)),
        ("metrics.local:80", ("metrics.local", 80)),
    ],
)
def test_metrics_addr_is_loopback_unless_a_host_is_given(
    value: str, expected: tuple[str, int]
) -> None:
    assert split_metrics_addr(value) == expected


@pytest.mark.parametrize("value", ["", ":", "host:", "host:70000", "::1:9310", "a b:1", "x:y"])
def test_a_bad_metrics_addr_is_refused(value: str) -> None:
    with pytest.raises(ValueError):
        split_metrics_addr(value)


def test_config_keys_default_off_and_normalise() -> None:
    cfg = RunnerConfig.parse(BASE)
    assert cfg.metrics_addr is None and not cfg.notify.enabled
    cfg = RunnerConfig.parse({**BASE, "METRICS_ADDR": 9310, "NOTIFY": {"URLS": ["http://h/x"]}})
    assert cfg.metrics_addr == "127.0.0.1:9310"
    assert cfg.notify.urls == ["http://h/x"] and cfg.notify.timeout == 5.0
    assert cfg.notify.enabled and not cfg.notify.on_success


def test_bad_metrics_and_notify_values_are_all_reported_with_their_keys() -> None:
    raw = {
        **BASE,
        "METRICS_ADDR": "localhost:http",
        "NOTIFY": {"URLS": ["ftp://h/x"], "TIMEOUT": 0, "HEARTBEAT_URL": "nope", "EXTRA": 1},
    }
    with pytest.raises(ConfigError) as caught:
        RunnerConfig.parse(raw)
    text = "\n".join(caught.value.problems)
    for key in ("METRICS_ADDR", "NOTIFY.URLS.0", "NOTIFY.TIMEOUT", "NOTIFY.HEARTBEAT_URL"):
        assert key in text, text
    assert "NOTIFY.EXTRA" in text, text


def test_the_cli_flag_value_is_checked_with_its_own_name() -> None:
    assert check_metrics_addr(":9", "--metrics-addr") == "127.0.0.1:9"
    with pytest.raises(ConfigError, match="--metrics-addr: expected"):
        check_metrics_addr("nope", "--metrics-addr")


def test_webhook_urls_are_logged_without_path_query_or_credentials() -> None:
    url = "https://user:pw@hooks.example.com:8443/services/T0/B0/SECRET?token=abc"
    assert redact_endpoint(url) == "https://hooks.example.com:8443/..."
    assert redact_endpoint("http://127.0.0.1:9/") == "http://127.0.0.1:9"
