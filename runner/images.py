"""The app image before a start: make it present (IMAGE_PULL_POLICY) and find its owner.

Two small decisions the runner needs before provisioning volumes (README, "Volumes"):
- whether to pull, build (the offline busybox test image) or refuse;
- which uid/gid new volumes get when the config names none: the user the app runs as
  (``CONTAINER_USER``, else the image's ``USER``) when it is numeric or resolvable in the
  image's /etc/passwd and /etc/group, else None (the volume layer then uses root).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..errors import ContainerRuntimeError
from .busybox_image import BUSYBOX_IMAGE_TAG
from .docker_runtime import DockerRuntime, ensure_busybox_image

ReadFile = Callable[[str], bytes | None]


def ensure_image(runtime: DockerRuntime, ref: str, policy: str, log: logging.Logger) -> None:
    """Make ``ref`` present locally according to ``policy``.

    Raises:
        ContainerRuntimeError: the image is missing and ``policy`` is ``never``, or a
            pull/build failed.
    """
    if policy == "always":
        log.info("image %s: pulling (IMAGE_PULL_POLICY always)", ref)
        _pull(runtime, ref, policy)
        return
    if runtime.image_exists(ref):
        return
    if policy == "never":
        raise ContainerRuntimeError(
            f"image {ref} is not present locally and IMAGE_PULL_POLICY is never",
            hint="build or load the image first, or set IMAGE_PULL_POLICY to if_not_present",
        )
    if ref == BUSYBOX_IMAGE_TAG:
        log.info("image %s: building the offline busybox image", ref)
        ensure_busybox_image(runtime)
        return
    log.info("image %s: not present, pulling", ref)
    _pull(runtime, ref, policy)


def _pull(runtime: DockerRuntime, ref: str, policy: str) -> None:
    """Pull ``ref``; a failure says whether a local copy exists and what to change.

    Raises:
        ContainerRuntimeError: the pull failed (no registry reachable, unknown image).
    """
    try:
        runtime.pull(ref)
    except ContainerRuntimeError as exc:
        if policy == "always" and runtime.image_exists(ref):
            hint = "a local copy exists: set IMAGE_PULL_POLICY to if_not_present to use it"
        else:
            hint = "check IMAGE and registry access, or build/load the image locally first"
        raise ContainerRuntimeError(
            f"image {ref} could not be pulled (IMAGE_PULL_POLICY {policy}): {exc.message}",
            status=exc.status,
            hint=hint,
        ) from exc


def image_owner(
    runtime: DockerRuntime, ref: str, container_user: str | None, log: logging.Logger
) -> tuple[int, int] | None:
    """The (uid, gid) the app runs as, or None when unset or unresolvable."""
    user = container_user or runtime.image_user(ref)
    if not user:
        return None
    owner = resolve_owner(user, lambda path: runtime.read_image_file(ref, path))
    if owner is None:
        log.warning("user %r of image %s is not resolvable; volumes default to root", user, ref)
    return owner


def resolve_owner(user: str, read_file: ReadFile) -> tuple[int, int] | None:
    """Resolve a Docker ``USER`` ("1000", "1000:100", "app", "app:staff") to (uid, gid).

    Docker's rules: a user without a group gets its passwd primary group, else gid 0.
    ``read_file`` is only called for names (and for a bare uid's primary group).
    """
    name, _, group = user.partition(":")
    if name.isdigit() and group.isdigit():
        return int(name), int(group)  # fully numeric: no need to look inside the image
    passwd = _table(read_file, "/etc/passwd")
    if name.isdigit():
        uid = int(name)
        entry = next((row for row in passwd if row[2] == name), None)
    else:
        entry = next((row for row in passwd if row[0] == name), None)
        if entry is None or not entry[2].isdigit():
            return None
        uid = int(entry[2])
    if not group:
        gid_text = entry[3] if entry is not None else "0"
        return (uid, int(gid_text)) if gid_text.isdigit() else None
    if group.isdigit():
        return uid, int(group)
    row = next((r for r in _table(read_file, "/etc/group") if r[0] == group), None)
    if row is None or not row[2].isdigit():
        return None
    return uid, int(row[2])


def _table(read_file: ReadFile, path: str) -> list[list[str]]:
    """Rows of a colon-separated passwd/group file; [] when the image has none."""
    data = read_file(path)
    if not data:
        return []
    rows = [line.split(":") for line in data.decode("utf-8", "replace").splitlines()]
    return [row for row in rows if len(row) >= 4]
