"""``car run``: one app container in the foreground, with its volumes and volume-sync."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..container_app_runner import ContainerAppRunnerPlugin
from ..errors import CarError, ConfigError
from ..layout import DataDir, default_data_dir
from ..ops.config import check_metrics_addr
from ..runner.config_file import load_runner_config
from ..runner.shutdown import ForcedExit
from .common import EXIT_RUNTIME, EXIT_USAGE, DataDirOption, LogLevelOption, configure_logging, fail

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
) -> None:
    """Run one app container in the foreground until SIGINT/SIGTERM (or RESTART_POLICY gives up)."""
    configure_logging(log_level)
    try:
        cfg = load_runner_config(config)
        if metrics_addr is not None:
            addr = check_metrics_addr(metrics_addr, "--metrics-addr")
            cfg = cfg.model_copy(update={"metrics_addr": addr})
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(f"car: config error: {problem}", err=True)
        fix = exc.hint or "fix the problems above"
        raise fail(f"cannot use config {config}: {fix}", EXIT_USAGE) from None
    root = data_dir or default_data_dir()
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
