"""SPEC §6: the SYNC block's defaults and rules, each refusal naming its key."""

from __future__ import annotations

from typing import Any

import pytest
from container_apps.errors import ConfigError
from container_apps.sync import constants as C
from container_apps.sync.config import SyncConfig
from container_apps.sync.preflight import ConsumerLimits

BASE = {"ENABLED": True, "KEY": "k", "TYPE": "consumer"}


def _problems(extra: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        SyncConfig.parse({**BASE, **extra})
    return info.value.problems


def test_defaults_are_the_spec_table() -> None:
    cfg = SyncConfig.parse({**BASE})
    assert (cfg.poll_interval, cfg.hsync_poll_interval) == (10.0, 60.0)
    assert cfg.allow_online_provider_capture is False
    assert cfg.effective_apply_mode == C.APPLY_OFFLINE_RESTART
    assert cfg.archive_format == C.ARCHIVE_FORMAT_CHUNKED and cfg.effective_compression_level == 3
    assert cfg.max_archive_bytes == 10 * 1024**3
    assert cfg.effective_max_unpacked_bytes == 4 * cfg.max_archive_bytes
    assert cfg.max_members == 1_000_000 and cfg.trusted_node_ids is None
    assert cfg.publish_retry_seconds == 60.0
    assert SyncConfig.parse(None).enabled is False


def test_max_unpacked_bytes_defaults_to_four_times_the_configured_archive_limit() -> None:
    cfg = SyncConfig.parse({**BASE, "MAX_ARCHIVE_BYTES": 100})
    assert cfg.effective_max_unpacked_bytes == 400
    assert ConsumerLimits.from_config(cfg).max_unpacked_bytes == 400


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"KEY": ""}, "SYNC.KEY"),
        ({"KEY": "x" * 129}, "SYNC.KEY"),
        ({"POLL_INTERVAL": 0.5}, "SYNC.POLL_INTERVAL"),
        ({"POLL_INTERVAL": float("inf")}, "SYNC.POLL_INTERVAL"),
        ({"POLL_INTERVAL": float("nan")}, "SYNC.POLL_INTERVAL"),
        ({"POLL_INTERVAL": True}, "SYNC.POLL_INTERVAL"),
        ({"HSYNC_POLL_INTERVAL": 9.9}, "SYNC.HSYNC_POLL_INTERVAL"),
        ({"ENABLED": 1}, "SYNC.ENABLED"),
        ({"TYPE": "both"}, "SYNC.TYPE"),
        ({"ARCHIVE_FORMAT": "tar.xz"}, "SYNC.ARCHIVE_FORMAT"),
        ({"COMPRESSION_LEVEL": 20}, "SYNC.COMPRESSION_LEVEL"),
        ({"ARCHIVE_FORMAT": "tar.gz", "COMPRESSION_LEVEL": 10}, "SYNC.COMPRESSION_LEVEL"),
        ({"COMPRESSION_LEVEL": 0}, "SYNC.COMPRESSION_LEVEL"),
        ({"MAX_ARCHIVE_BYTES": 0}, "SYNC.MAX_ARCHIVE_BYTES"),
        ({"MAX_MEMBERS": 0}, "SYNC.MAX_MEMBERS"),
        ({"ARCHIVE_FORMAT": "chunked", "COMPRESSION_LEVEL": 20}, "SYNC.COMPRESSION_LEVEL"),
        ({"KEEP_SNAPSHOTS": 0}, "SYNC.KEEP_SNAPSHOTS"),
        ({"KEEP_SNAPSHOTS": 1.5}, "SYNC.KEEP_SNAPSHOTS"),
        ({"PUBLISH_RETRY_SECONDS": -1}, "SYNC.PUBLISH_RETRY_SECONDS"),
        ({"PUBLISH_RETRY_SECONDS": 3601}, "SYNC.PUBLISH_RETRY_SECONDS"),
        ({"PUBLISH_RETRY_SECONDS": "60"}, "SYNC.PUBLISH_RETRY_SECONDS"),
        ({"PUBLISH_RETRY_SECONDS": float("inf")}, "SYNC.PUBLISH_RETRY_SECONDS"),
        ({"TRUSTED_NODE_IDS": ["a", 1]}, "SYNC.TRUSTED_NODE_IDS"),
        ({"BOGUS": 1}, "SYNC.BOGUS"),
    ],
)
def test_each_bad_value_is_refused_naming_its_key(extra: dict[str, Any], key: str) -> None:
    [problem] = _problems(extra)
    assert problem.startswith(key), problem


def test_limits_at_the_boundaries_are_accepted() -> None:
    cfg = SyncConfig.parse(
        {**BASE, "KEY": "x" * 128, "POLL_INTERVAL": 1, "HSYNC_POLL_INTERVAL": 10}
    )
    assert cfg.poll_interval == 1.0 and cfg.hsync_poll_interval == 10.0
    assert SyncConfig.parse({**BASE, "COMPRESSION_LEVEL": 19}).effective_compression_level == 19
    gz = SyncConfig.parse({**BASE, "ARCHIVE_FORMAT": "tar.gz", "COMPRESSION_LEVEL": 9})
    assert gz.effective_compression_level == 9
    for seconds in (0, 3600):
        assert (
            SyncConfig.parse({**BASE, "PUBLISH_RETRY_SECONDS": seconds}).publish_retry_seconds
            == seconds
        )


def test_chunked_format_takes_a_zstd_level_and_keep_snapshots_counts_snapshots() -> None:
    cfg = SyncConfig.parse({**BASE, "ARCHIVE_FORMAT": "chunked", "KEEP_SNAPSHOTS": 3})
    assert cfg.archive_format == C.ARCHIVE_FORMAT_CHUNKED
    assert cfg.effective_compression_level == C.DEFAULT_ZSTD_LEVEL
    assert cfg.keep_snapshots == 3
    assert SyncConfig.parse({**BASE}).keep_snapshots == 1
    level = SyncConfig.parse({**BASE, "ARCHIVE_FORMAT": "chunked", "COMPRESSION_LEVEL": 19})
    assert level.effective_compression_level == 19


def test_publish_retry_seconds_message_names_the_range() -> None:
    assert _problems({"PUBLISH_RETRY_SECONDS": -1}) == [
        "SYNC.PUBLISH_RETRY_SECONDS: must be a number of seconds from 0 to 3600, got -1"
    ]


@pytest.mark.parametrize("mode", [C.APPLY_ONLINE_NO_RESTART, C.APPLY_ONLINE_RESTART])
def test_online_apply_modes_resolve_to_offline_restart_with_a_reason(mode: str) -> None:
    cfg = SyncConfig.parse({**BASE, "CONSUMER_APPLY_MODE": mode})
    assert cfg.effective_apply_mode == C.APPLY_OFFLINE_RESTART
    assert cfg.apply_mode_note is not None and mode in cfg.apply_mode_note
    assert SyncConfig.parse({**BASE}).apply_mode_note is None


def test_trusted_node_ids_reach_the_consumer_limits() -> None:
    cfg = SyncConfig.parse({**BASE, "TRUSTED_NODE_IDS": ["n1", "n2"]})
    assert ConsumerLimits.from_config(cfg).trusted_node_ids == ("n1", "n2")


def test_cross_field_rules_are_reported_with_field_errors_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        SyncConfig.parse({"ENABLED": True, "TYPE": "provider", "POLL_INTERVAL": "nope"})
    assert caught.value.problems == [
        'SYNC.POLL_INTERVAL: must be a number >= 1, got "nope"',
        "SYNC.KEY: required when ENABLED is true",
    ]


def test_compression_range_is_checked_alongside_other_field_errors() -> None:
    raw = {"ARCHIVE_FORMAT": "tar.gz", "COMPRESSION_LEVEL": 12, "MAX_MEMBERS": 0}
    with pytest.raises(ConfigError) as caught:
        SyncConfig.parse(raw)
    assert "SYNC.COMPRESSION_LEVEL: must be 1-9 for tar.gz, got 12" in caught.value.problems
    assert any(p.startswith("SYNC.MAX_MEMBERS:") for p in caught.value.problems)
