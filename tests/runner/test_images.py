"""Image presence (IMAGE_PULL_POLICY) and the default volume owner from the image USER."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from container_apps.errors import ContainerRuntimeError
from container_apps.runner.images import ensure_image, resolve_owner

LOG = logging.getLogger("test.images")
PASSWD = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\nbad:x:zz:1::/:\n"
GROUP = b"root:x:0:\nstaff:x:50:\n"


def reader(files: dict[str, bytes]) -> Any:
    return lambda path: files.get(path)


@pytest.mark.parametrize(
    ("user", "owner"),
    [
        ("1000:1000", (1000, 1000)),
        ("1000", (1000, 1001)),  # primary group from /etc/passwd
        ("4242", (4242, 0)),  # no passwd entry: Docker uses gid 0
        ("app", (1000, 1001)),
        ("app:staff", (1000, 50)),
        ("app:7", (1000, 7)),
        ("ghost", None),
        ("app:nogroup", None),
        ("bad", None),
    ],
)
def test_resolve_owner_follows_docker_user_rules(user: str, owner: tuple[int, int] | None) -> None:
    assert resolve_owner(user, reader({"/etc/passwd": PASSWD, "/etc/group": GROUP})) == owner


def test_numeric_user_and_group_need_no_image_files() -> None:
    def fail(path: str) -> bytes | None:
        raise AssertionError(f"read {path}")

    assert resolve_owner("5:6", fail) == (5, 6)


def test_named_user_without_passwd_is_unresolvable() -> None:
    assert resolve_owner("app", reader({})) is None


def test_policy_never_with_missing_image_is_a_clear_error(mocker: Any) -> None:
    runtime = mocker.Mock()
    runtime.image_exists.return_value = False
    with pytest.raises(ContainerRuntimeError) as info:
        ensure_image(runtime, "nothere:1", "never", LOG)
    assert "not present locally and IMAGE_PULL_POLICY is never" in str(info.value)
    runtime.pull.assert_not_called()


def test_if_not_present_pulls_only_missing_images(mocker: Any) -> None:
    runtime = mocker.Mock()
    runtime.image_exists.return_value = True
    ensure_image(runtime, "img:1", "if_not_present", LOG)
    runtime.pull.assert_not_called()
    runtime.image_exists.return_value = False
    ensure_image(runtime, "img:1", "if_not_present", LOG)
    runtime.pull.assert_called_once_with("img:1")


def test_policy_always_pulls_even_when_present(mocker: Any) -> None:
    runtime = mocker.Mock()
    runtime.image_exists.return_value = True
    ensure_image(runtime, "img:1", "always", LOG)
    runtime.pull.assert_called_once_with("img:1")


def test_failed_pull_names_the_policy_and_the_fix(mocker: Any) -> None:
    runtime = mocker.Mock()
    runtime.pull.side_effect = ContainerRuntimeError("pull image img:1: connection refused")
    runtime.image_exists.return_value = False
    with pytest.raises(ContainerRuntimeError) as info:
        ensure_image(runtime, "img:1", "if_not_present", LOG)
    assert "img:1 could not be pulled (IMAGE_PULL_POLICY if_not_present)" in str(info.value)
    assert info.value.hint is not None and "build/load the image locally" in info.value.hint


def test_failed_always_pull_of_a_local_image_points_to_if_not_present(mocker: Any) -> None:
    runtime = mocker.Mock()
    runtime.pull.side_effect = ContainerRuntimeError("no registry")
    runtime.image_exists.return_value = True
    with pytest.raises(ContainerRuntimeError) as info:
        ensure_image(runtime, "img:1", "always", LOG)
    assert info.value.hint == (
        "a local copy exists: set IMAGE_PULL_POLICY to if_not_present to use it"
    )
