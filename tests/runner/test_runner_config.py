"""RunnerConfig validation (README, "Config keys"): every problem at once, with its key path."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from container_apps.errors import ConfigError
from container_apps.runner.config_file import load_runner_config
from container_apps.runner.docker_runtime import ContainerSpec
from container_apps.runner.runner_config import RunnerConfig

MINIMAL: dict[str, Any] = {"INSTANCE_ID": "app1", "IMAGE": "car-busybox:latest"}


def problems_of(raw: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        RunnerConfig.parse(raw)
    return info.value.problems


def test_minimal_config_gets_spec_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAR_NODE_ID", "node-a")
    cfg = RunnerConfig.parse(MINIMAL)
    assert cfg.node_id == "node-a"
    assert ContainerSpec(cfg.instance_id, cfg.image, data_dir="/d").name == "car-app1"
    assert cfg.image_pull_policy == "if_not_present"
    assert cfg.network_mode == "bridge"
    assert cfg.restart_policy == "always"
    assert (cfg.restart_backoff_initial, cfg.restart_backoff_max) == (10.0, 600.0)
    assert (cfg.restart_backoff_multiplier, cfg.restart_max_retries) == (2.0, 5)
    assert (cfg.process_delay, cfg.stop_timeout) == (5.0, 10)
    assert cfg.sync.enabled is False
    assert cfg.storage.blobs is None and cfg.storage.registry is None
    assert (cfg.logs_keep_files, cfg.logs_keep_bytes) == (20, 256 * 1024 * 1024)


def test_log_retention_keys_are_validated_naming_the_key() -> None:
    assert problems_of({**MINIMAL, "LOGS_KEEP_FILES": 0, "LOGS_KEEP_BYTES": "1G"}) == [
        "LOGS_KEEP_FILES: must be an integer >= 1 (saved container logs kept in logs/), got 0",
        "LOGS_KEEP_BYTES: must be an integer number of bytes >= 1 (total size of logs/ kept), "
        'got "1G"',
    ]
    cfg = RunnerConfig.parse({**MINIMAL, "LOGS_KEEP_FILES": 1, "LOGS_KEEP_BYTES": 1})
    assert (cfg.logs_keep_files, cfg.logs_keep_bytes) == (1, 1)


def test_node_id_defaults_to_host_name_without_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAR_NODE_ID", raising=False)
    monkeypatch.setattr("socket.gethostname", lambda: "host-x")
    assert RunnerConfig.parse(MINIMAL).node_id == "host-x"


def test_unknown_top_level_key_names_closest_known_key() -> None:
    assert problems_of({**MINIMAL, "PROCES_DELAY": 1}) == [
        "PROCES_DELAY: unknown key (did you mean PROCESS_DELAY?)"
    ]


def test_string_false_for_a_boolean_is_an_error() -> None:
    raw = {
        **MINIMAL,
        "FIXED_SIZE_VOLUMES": {
            "data": {"SIZE": "16M", "MOUNTING_POINT": "/data", "FORCE_RECREATE": "false"}
        },
        "SYNC": {"ENABLED": "false"},
    }
    assert problems_of(raw) == [
        'SYNC.ENABLED: must be a JSON boolean (true/false), got "false"',
        'FIXED_SIZE_VOLUMES.data.FORCE_RECREATE: must be a JSON boolean (true/false), got "false"',
    ]


def test_missing_image_is_required() -> None:
    assert problems_of({"INSTANCE_ID": "app1"}) == ["IMAGE: required"]


@pytest.mark.parametrize("bad", ["App", "-x", "", "a" * 64, "a/b", "a b"])
def test_bad_instance_id_is_rejected(bad: str) -> None:
    [line] = problems_of({**MINIMAL, "INSTANCE_ID": bad})
    assert line.startswith("INSTANCE_ID: must be 1-63 characters")


@pytest.mark.parametrize("good", ["a", "0", "app_1.b-c", "a" * 63])
def test_good_instance_ids_pass(good: str) -> None:
    assert RunnerConfig.parse({**MINIMAL, "INSTANCE_ID": good}).instance_id == good


def test_system_volume_name_in_fixed_size_volumes_is_an_error() -> None:
    raw = {
        **MINIMAL,
        "FIXED_SIZE_VOLUMES": {"r1en_system": {"SIZE": "10M", "MOUNTING_POINT": "/x"}},
    }
    [line] = problems_of(raw)
    assert line.startswith("FIXED_SIZE_VOLUMES.r1en_system: ")
    assert "reserved for the system volume" in line


def test_several_problems_are_reported_at_once() -> None:
    raw = {
        "INSTANCE_ID": "Bad",
        "IMAGEE": "x",
        "RESTART_POLICY": "sometimes",
        "PROCESS_DELAY": "1",
        "SYNC": {"POLL_INTERVAL": "nope"},
    }
    lines = problems_of(raw)
    keys = [line.split(":", 1)[0] for line in lines]
    assert sorted(keys) == sorted(
        ["SYNC.POLL_INTERVAL", "INSTANCE_ID", "IMAGE", "RESTART_POLICY", "PROCESS_DELAY", "IMAGEE"]
    )
    assert 'SYNC.POLL_INTERVAL: must be a number >= 1, got "nope"' in lines


def test_sync_cross_field_rules_are_split_per_key() -> None:
    lines = problems_of({**MINIMAL, "SYNC": {"ENABLED": True}})
    assert lines[0].startswith("SYNC.KEY: required")
    assert lines[1].startswith("SYNC.TYPE: required")


def test_two_binds_on_one_container_path_are_rejected() -> None:
    raw = {
        **MINIMAL,
        "VOLUMES": {"logs": "/app/data"},
        "FIXED_SIZE_VOLUMES": {"data": {"SIZE": "16M", "MOUNTING_POINT": "/app/data/"}},
    }
    assert problems_of(raw) == [
        "FIXED_SIZE_VOLUMES.data.MOUNTING_POINT: container path /app/data is already used "
        "by VOLUMES.logs"
    ]


def test_relative_mount_points_are_rejected() -> None:
    raw = {
        **MINIMAL,
        "VOLUMES": {"logs": "var/log"},
        "FILE_VOLUMES": {"conf": {"content": "x", "mounting_point": "app.conf"}},
    }
    lines = problems_of(raw)
    assert lines[0].startswith("FILE_VOLUMES.conf.mounting_point: must be an absolute")
    assert lines[1] == "VOLUMES.logs: container path 'var/log' must be absolute"


def test_wrong_types_in_env_and_command_give_one_line_each() -> None:
    lines = problems_of({**MINIMAL, "ENV": {"A": [1]}, "CONTAINER_START_COMMAND": 5})
    assert lines == [
        "CONTAINER_START_COMMAND: must be null, a string or a list of strings, got 5",
        "ENV.A: must be an object whose values are strings, numbers or booleans, got [1]",
    ]


def test_env_values_become_strings_for_docker() -> None:
    cfg = RunnerConfig.parse({**MINIMAL, "ENV": {"S": "x", "I": 3, "F": 1.5, "B": True}})
    assert cfg.app_env() == {"S": "x", "I": "3", "F": "1.5", "B": "true"}


def test_storage_urls_are_checked_by_the_backend_factories() -> None:
    lines = problems_of({**MINIMAL, "STORAGE": {"BLOBS": "ftp://x", "REGISTRY": "nope://y"}})
    assert [line.split(":", 1)[0] for line in lines] == ["STORAGE.BLOBS", "STORAGE.REGISTRY"]


@pytest.mark.parametrize(
    ("raw", "got"), [([1, 2], "an array"), (None, "null"), ("x", "a string"), (5, "a number")]
)
def test_non_object_config_is_an_error_in_json_words(raw: Any, got: str) -> None:
    assert problems_of(raw) == [f"config: must be a JSON object, got {got}"]


def test_nested_wrong_types_are_all_reported_with_full_key_paths() -> None:
    raw = {
        **MINIMAL,
        "FIXED_SIZE_VOLUMES": {
            "a": None,
            "b": "16M",
            "c": {"SIZE": 16, "MOUNTING_POINT": ["/c"], "OWNER_UID": "0", "FS": "ext4"},
        },
        "FILE_VOLUMES": {"f": [], "g": {"content": None, "mounting_point": "/r1en_system/x"}},
        "CONTAINER_RESOURCES": {"cpu": "1", "memory": 512, "ports": {"80/tcp": "x"}},
        "STORAGE": {"BLOBS": 5, "REGISTRY": {"url": "redis://"}},
    }
    lines = problems_of(raw)
    assert sorted(line.split(": ", 1)[0] for line in lines) == sorted(
        [
            "FIXED_SIZE_VOLUMES.a",
            "FIXED_SIZE_VOLUMES.b",
            "FIXED_SIZE_VOLUMES.c.SIZE",
            "FIXED_SIZE_VOLUMES.c.MOUNTING_POINT",
            "FIXED_SIZE_VOLUMES.c.OWNER_UID",
            "FIXED_SIZE_VOLUMES.c.FS",
            "FILE_VOLUMES.f",
            "FILE_VOLUMES.g.content",
            "FILE_VOLUMES.g.mounting_point",
            "CONTAINER_RESOURCES.cpu",
            "CONTAINER_RESOURCES.memory",
            "CONTAINER_RESOURCES.ports.80/tcp",
            "STORAGE.BLOBS",
            "STORAGE.REGISTRY",
        ]
    )
    assert "FIXED_SIZE_VOLUMES.a: must be an object, got null" in lines
    assert 'FIXED_SIZE_VOLUMES.b: must be an object, got "16M"' in lines
    assert "FILE_VOLUMES.f: must be an object, got []" in lines
    assert all("\n" not in line and "NoneType" not in line for line in lines)


def test_bind_below_a_file_volume_is_rejected() -> None:
    raw = {
        **MINIMAL,
        "FILE_VOLUMES": {"conf": {"content": "x", "mounting_point": "/etc/app"}},
        "VOLUMES": {"logs": "/etc/app/logs"},
        "FIXED_SIZE_VOLUMES": {"data": {"SIZE": "16M", "MOUNTING_POINT": "/etc/app.d"}},
    }
    assert problems_of(raw) == [
        "VOLUMES.logs: container path /etc/app/logs lies below the file mounted at /etc/app "
        "by FILE_VOLUMES.conf.mounting_point; mount it elsewhere"
    ]


def test_load_reads_json_and_reports_syntax_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(MINIMAL))
    assert load_runner_config(good).instance_id == "app1"
    bad = tmp_path / "bad.json"
    bad.write_text('{"IMAGE": ')
    with pytest.raises(ConfigError) as info:
        load_runner_config(bad)
    assert "invalid JSON at line 1" in str(info.value)


@pytest.mark.parametrize("name", ["c.json", "c.yaml"])
def test_empty_config_file_is_an_error_with_the_fix(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(" \n")
    with pytest.raises(ConfigError) as info:
        load_runner_config(path)
    assert info.value.problems == [f"{path}: the config file is empty"]
    assert info.value.hint is not None and "INSTANCE_ID and IMAGE" in info.value.hint


def test_invalid_yaml_is_one_line_with_its_position(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("INSTANCE_ID: a\nIMAGE: x\n  bad: [1\n")
    with pytest.raises(ConfigError) as info:
        load_runner_config(path)
    assert info.value.problems == [
        f"{path}: invalid YAML at line 3 column 6: mapping values are not allowed here"
    ]


def test_duplicate_json_key_is_an_error_not_a_silent_override(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"INSTANCE_ID": "a", "IMAGE": "x", "INSTANCE_ID": "b"}')
    with pytest.raises(ConfigError) as info:
        load_runner_config(path)
    assert info.value.problems == ["INSTANCE_ID: duplicate key (only the last value would count)"]


def test_load_reads_yaml_by_suffix(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("INSTANCE_ID: app1\nIMAGE: car-busybox:latest\nSTOP_TIMEOUT: 2\n")
    assert load_runner_config(path).stop_timeout == 2


def test_the_yaml_extra_is_declared_and_part_of_dev() -> None:
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    assert [r for r in extras["yaml"] if r.lower().startswith("pyyaml")]
    assert [r for r in extras["dev"] if r.lower().startswith("pyyaml")]


def test_load_of_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_runner_config(tmp_path / "absent.json")
    assert "cannot read config file" in str(info.value)


def test_example_configs_are_valid() -> None:
    examples = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.json"))
    assert examples
    for path in examples:
        load_runner_config(path)


def test_yaml_without_pyyaml_is_a_config_error_with_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml -> ImportError
    path = tmp_path / "c.yml"
    path.write_text("IMAGE: x\n")
    with pytest.raises(ConfigError) as info:
        load_runner_config(path)
    assert info.value.hint is not None and "pip install 'container_apps[yaml]'" in info.value.hint
