"""``car run``: one app container in the foreground, with its volumes and volume-sync."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ..container_app_runner import ContainerAppRunnerPlugin
from ..errors import CarError, ConfigError
from ..layout import DataDir, default_data_dir, unusable_dir_reason
from ..ops.config import check_metrics_addr
from ..runner.config_file import load_runner_config
from ..runner.shutdown import ForcedExit
from .common import (
    EXIT_RUNTIME,
    EXIT_USAGE,
    DataDirOption,
    LogFormatOption,
    LogLevelOption,
    configure_logging,
    error_line,
    fail,
)

MetricsAddrOption = Annotated[
    str | None,
    typer.Option(
        "--metrics-addr",
        help='Serve Prometheus metrics at HOST:PORT/metrics (":PORT": 127.0.0.1); '
        "overrides METRICS_ADDR.",
        show_default=False,
    ),
]


def run(
    config: Annotated[Path, typer.Argument(help="Runner config file (JSON, or YAML).")],
    data_dir: DataDirOption = None,
    log_level: LogLevelOption = "INFO",
    metrics_addr: MetricsAddrOption = None,
    log_format: LogFormatOption = "text",
) -> None:
    """Run one app container in the foreground until SIGINT/SIGTERM (or RESTART_POLICY gives up)."""
    configure_logging(log_level, log_format)  # a bad level or format: exit 2 before anything
    if os.geteuid() != 0:
        raise fail(
            "car run needs root (it mounts loop-device volumes and manages the app's "
            "container): run it with sudo, or as the systemd service of examples/car.service",
            EXIT_USAGE,
        )
    try:
        cfg = load_runner_config(config)
        if metrics_addr is not None:
            addr = check_metrics_addr(metrics_addr, "--metrics-addr")
            cfg = cfg.model_copy(update={"metrics_addr": addr})
    except ConfigError as exc:
        for problem in exc.problems:
            error_line(f"config error: {problem}")
        fix = exc.hint or "fix the problems above"
        raise fail(f"cannot use config {config}: {fix}", EXIT_USAGE) from None
    configure_logging(log_level, log_format, instance=cfg.instance_id)
    root = data_dir or default_data_dir()
    unusable = unusable_dir_reason(root / "instances" / cfg.instance_id)
    if unusable:
        raise fail(
            f"cannot use data dir {root}: {unusable}; point --data-dir (or CAR_DATA_DIR) "
            "at a directory",
            EXIT_USAGE,
        )
    runner = ContainerAppRunnerPlugin(cfg, DataDir(root.absolute()))
    try:
        code = runner.run_forever()
    except ForcedExit:
        raise fail(
            "forced exit: cleanup abandoned; run the same `car run` again to sweep leftovers",
            EXIT_RUNTIME,
        ) from None
    except CarError as exc:
        raise fail(str(exc), EXIT_RUNTIME) from None
    raise typer.Exit(code)
