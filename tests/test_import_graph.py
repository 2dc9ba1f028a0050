"""The package's import graph has no cycle, between modules or between its folders.

A cycle makes a module's meaning depend on import order (a command that exists only
because another module imported it first); between folders it means neither can be read,
tested or replaced alone. ``tests/support/import_graph.py`` reads imports with ``ast``.
"""

from __future__ import annotations

from pathlib import Path

from container_apps.tests.support.import_graph import (
    cycles,
    folder_graph,
    import_graph,
    imports_of_test_modules,
    stray_helpers,
)

ROOT = Path(__file__).resolve().parent.parent


def test_no_module_imports_itself_back() -> None:
    assert cycles(import_graph(ROOT)) == []


def test_no_two_folders_import_each_other() -> None:
    assert cycles(folder_graph(import_graph(ROOT))) == []


def test_the_checker_finds_a_planted_cycle(tmp_path: Path) -> None:
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "a.py").write_text("from . import b\n")
    (tmp_path / "b.py").write_text("from .a import x\n")
    (tmp_path / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n"
    )
    assert cycles(import_graph(tmp_path)) == [["container_apps.a", "container_apps.b"]]


def test_the_cli_commands_do_not_import_the_cli_package() -> None:
    graph = import_graph(ROOT)
    for name in ("container_apps.cli.run", "container_apps.cli.demo", "container_apps.cli.sync"):
        assert "container_apps.cli" not in graph[name]


def test_no_test_module_is_imported_by_another_module() -> None:
    assert imports_of_test_modules(ROOT) == []


def test_every_test_helper_lives_in_tests_support() -> None:
    assert stray_helpers(ROOT) == []


def test_the_test_module_check_finds_imports_relative_and_in_strings(tmp_path: Path) -> None:
    (tmp_path / "tests" / "sync").mkdir(parents=True)
    for name in ("__init__.py", "sync/__init__.py", "sync/test_b.py", "sync/test_c.py"):
        (tmp_path / "tests" / name).write_text("")
    (tmp_path / "tests" / "sync" / "test_a.py").write_text(
        "from .test_b import x\n"
        'CHILD = "from container_apps.tests.sync.test_a import child; child()"\n'
    )
    (tmp_path / "tests" / "sync" / "helper.py").write_text(
        "from container_apps.tests.sync import test_c\n"
    )
    assert imports_of_test_modules(tmp_path) == [
        ("container_apps.tests.sync.helper", "container_apps.tests.sync.test_c"),
        ("container_apps.tests.sync.test_a", "container_apps.tests.sync.test_a"),
        ("container_apps.tests.sync.test_a", "container_apps.tests.sync.test_b"),
    ]
    assert stray_helpers(tmp_path) == ["tests/sync/helper.py"]
