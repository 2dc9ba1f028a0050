"""Container path -> host path resolution (docs/FORMAT.md, "Archive paths").

An app names data by its *container* path; the runner reads (provider) or writes
(consumer) the matching host path. Every path in a request or a record is untrusted, so
resolution applies the eight rules of that section in order and the first failure is the
error. Errors are ``RequestRejected`` with a stable ``code``; their messages name the
container path only, never a host path and never where a symlink points.

Pure filesystem logic: no Docker, no network. The only I/O is ``lstat``/``realpath`` in
the rule-8 checks.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import RequestRejected
from ..volumes.binding import VolumeBinding
from . import constants as C


@dataclass(frozen=True, slots=True)
class ResolvedPath:
    """A container path that passed rules 1-7, with the host path it maps to."""

    container_path: str  # normalised absolute container path
    host_path: Path  # the joined host path (not realpath'd)
    binding: VolumeBinding

    @property
    def relative(self) -> str:
        """The path below the volume root ("" for the root itself)."""
        return _relative_to_bind(self.container_path, _norm_bind(self.binding.container_path))


def _reject(code: str, message: str) -> RequestRejected:
    return RequestRejected(message, code=code, stage=C.STAGE_VALIDATION)


def _norm_bind(container_path: str) -> str:
    """Normalise a bind's container path ("//x/" -> "/x")."""
    norm = posixpath.normpath(container_path)
    return "/" + norm.lstrip("/")


def _contains(outer: str, inner: str) -> bool:
    """Anchored containment of normalised absolute POSIX paths (not a substring test)."""
    return outer == "/" or inner == outer or inner.startswith(outer + "/")


def _relative_to_bind(container_path: str, bind_path: str) -> str:
    return container_path[len(bind_path) :].lstrip("/") if bind_path != "/" else container_path[1:]


def _inside(root: str, candidate: str) -> bool:
    """True if host path ``candidate`` equals ``root`` or lies below it (both absolute)."""
    return candidate == root or candidate.startswith(root.rstrip(os.sep) + os.sep)


class PathResolver:
    """Resolves container paths against the runner's volume binds."""

    def __init__(
        self, bindings: Sequence[VolumeBinding], *, allowed_roots: Sequence[Path] = ()
    ) -> None:
        """Create a resolver.

        Args:
            bindings: every bind of the app container (all kinds; rule 5 considers all
                of them, rule 6 then refuses the ones sync may not touch).
            allowed_roots: optional host directories that this instance's syncable
                volumes live in (its fixed-volume mounts dir, its legacy volume dirs).
                When given, a syncable binding whose host root is not equal to or below
                one of them (anchored path check, not a substring test) is refused.
        """
        self._bindings = tuple(bindings)
        self._allowed = tuple(os.path.normpath(os.path.abspath(r)) for r in allowed_roots)

    def syncable_roots(self) -> tuple[Path, ...]:
        """Host roots of the volumes sync may write (rule 6), e.g. to sweep runner files."""
        roots: list[Path] = []
        for binding in self._bindings:
            root = os.path.normpath(os.path.abspath(binding.host_root))
            allowed = not self._allowed or any(_inside(a, root) for a in self._allowed)
            if binding.syncable and allowed and Path(root) not in roots:
                roots.append(Path(root))
        return tuple(roots)

    # --- rules 1-7 -------------------------------------------------------------------
    def resolve(self, container_path: object) -> ResolvedPath:
        """Apply rules 1-7 and return the host mapping.

        Raises:
            RequestRejected: the first rule that fails, with its stable ``code``.
        """
        norm = self._normalise(container_path)
        binding = self._binding_for(norm)
        self._require_syncable(binding, norm)
        root = os.path.normpath(binding.host_root)
        rel = _relative_to_bind(norm, _norm_bind(binding.container_path))
        host = os.path.normpath(os.path.join(root, rel)) if rel else root
        if not _inside(root, host):
            raise _reject("path_outside_volume", f"path {norm!r} leaves its volume")
        return ResolvedPath(container_path=norm, host_path=Path(host), binding=binding)

    container_to_host = resolve

    @staticmethod
    def _normalise(container_path: object) -> str:
        if not isinstance(container_path, str) or container_path == "":
            raise _reject("path_not_string", "each archive path must be a non-empty string")
        shown = container_path[:256]
        if "\x00" in container_path:
            raise _reject("path_not_string", f"path {shown!r} contains a NUL character")
        if ".." in container_path.split("/"):
            raise _reject("path_traversal", f"path {shown!r} must not contain '..'")
        norm = posixpath.normpath(container_path)
        if not norm.startswith("/"):
            raise _reject("path_not_absolute", f"path {shown!r} must be absolute")
        norm = "/" + norm.lstrip("/")  # posix keeps a leading "//"; we do not
        system = C.SYSTEM_VOLUME_MOUNT
        if _contains(system, norm) or _contains(norm, system):
            raise _reject(
                "path_system_volume",
                f"path {norm!r} is the system volume {system} or contains it",
            )
        return norm

    def _binding_for(self, norm: str) -> VolumeBinding:
        best: VolumeBinding | None = None
        best_len = -1
        for binding in self._bindings:
            bind_path = _norm_bind(binding.container_path)
            if _contains(bind_path, norm) and len(bind_path) > best_len:
                best, best_len = binding, len(bind_path)
        if best is None:
            raise _reject("path_not_in_volume", f"path {norm!r} is not inside any mounted volume")
        return best

    def _require_syncable(self, binding: VolumeBinding, norm: str) -> None:
        root = os.path.normpath(os.path.abspath(binding.host_root))
        allowed = not self._allowed or any(_inside(a, root) for a in self._allowed)
        if not (binding.syncable and allowed):
            raise _reject(
                "path_volume_not_syncable",
                f"path {norm!r} is not in a FIXED_SIZE_VOLUMES or VOLUMES volume of this app",
            )

    # --- rule 8 ------------------------------------------------------------------------
    def resolve_for_read(self, container_path: object) -> ResolvedPath:
        """Rules 1-7 plus rule 8 for reading: no symlink below the volume root.

        Walks every component below the root with ``lstat`` (never following a link,
        never reading its target) and then checks ``realpath`` stays inside the root.

        Raises:
            RequestRejected: ``path_symlink``, ``path_not_found`` or a rule 1-7 code.
        """
        resolved = self.resolve(container_path)
        root = os.path.normpath(resolved.binding.host_root)
        rel = resolved.relative
        current = root
        shown = _norm_bind(resolved.binding.container_path)
        for part in rel.split("/") if rel else []:
            current = os.path.join(current, part)
            shown = posixpath.join(shown, part)
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                raise _reject("path_not_found", f"path {shown!r} does not exist") from None
            except OSError:
                raise _reject("path_unreadable", f"path {shown!r} cannot be read") from None
            if stat.S_ISLNK(st.st_mode):
                raise _reject("path_symlink", f"path {shown!r} is a symbolic link")
        if not os.path.lexists(root):
            raise _reject("path_not_found", f"volume of path {resolved.container_path!r} is absent")
        if not _inside(os.path.realpath(root), os.path.realpath(resolved.host_path)):
            raise _reject("path_symlink", f"path {resolved.container_path!r} leaves its volume")
        return resolved

    def check_write_target(self, resolved: ResolvedPath) -> None:
        """Rule 8 for writing; call right before each write.

        ``realpath`` of the target (if it exists) and of its parent must stay inside
        ``realpath(host_root)``.

        Raises:
            RequestRejected: ``path_outside_volume`` if the host path is not lexically
                inside its root; ``path_symlink`` if a link makes it resolve outside.
        """
        root = os.path.normpath(resolved.binding.host_root)
        host = os.path.normpath(resolved.host_path)
        name = resolved.container_path
        if not _inside(root, host):
            raise _reject("path_outside_volume", f"path {name!r} leaves its volume")
        real_root = os.path.realpath(root)
        checks = [os.path.dirname(host)] if host != root else []
        if os.path.lexists(host):
            checks.append(host)
        for candidate in checks:
            if not _inside(real_root, os.path.realpath(candidate)):
                raise _reject("path_symlink", f"path {name!r} resolves outside its volume")
