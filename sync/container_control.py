"""ContainerControl: the runner's stop/start, as the sync code sees it (STYLE G6).

Sync never uses the runner's full restart path (which unmounts volumes): it asks for a
confirmed stop, works on the mounted volumes, then starts a new container with the same
spec. Tests pass a fake; the runner passes itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol


class ContainerControl(Protocol):
    """What sync needs from the runner."""

    def stop_confirmed(self) -> None:
        """Stop and remove the app container; return only once Docker reports it gone.

        Raises:
            ContainerRuntimeError: the stop could not be confirmed; volumes must not be
                touched.
        """
        ...

    def start(self) -> None:
        """Start a new app container with the same spec (volumes stay mounted)."""
        ...

    def is_running(self) -> bool:
        """True while the app container runs."""
        ...

    def get_archive(self, container_path: str) -> Iterator[bytes]:
        """Docker's ``get_archive`` of a path in the running container (online capture)."""
        ...
