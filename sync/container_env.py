"""The environment the runner exports to the app about its system volume and sync role.

Built from ``SyncConfig``, so it lives in ``sync/``: the app learns where to write
``request.json`` (docs/FORMAT.md, "App-facing control files") and, with sync on, its role and key.
"""

from __future__ import annotations

from . import constants as C
from .config import SyncConfig

# Names the runner owns: exported only with a bound system volume, never taken from ENV.
RESERVED_ENV_NAMES = (
    C.ENV_SYSTEM_VOLUME,
    C.ENV_VOLUME_SYNC_DIR,
    C.ENV_SYNC_REQUEST_FILE,
    C.ENV_SYNC_TYPE,
    C.ENV_SYNC_KEY,
)


def system_env(sync: SyncConfig) -> dict[str, str]:
    """The env vars exported to the app when the system volume is bound (README, "Volumes").

    Returns:
        R1_SYSTEM_VOLUME, R1_VOLUME_SYNC_DIR and R1_SYNC_REQUEST_FILE always; R1_SYNC_TYPE
        and R1_SYNC_KEY too when sync is enabled. They override same-named ENV entries.
    """
    env = {
        C.ENV_SYSTEM_VOLUME: C.SYSTEM_VOLUME_MOUNT,
        C.ENV_VOLUME_SYNC_DIR: C.VOLUME_SYNC_DIR,
        C.ENV_SYNC_REQUEST_FILE: f"{C.VOLUME_SYNC_DIR}/{C.REQUEST_FILE}",
    }
    if sync.enabled and sync.type is not None and sync.key is not None:
        env[C.ENV_SYNC_TYPE] = sync.type
        env[C.ENV_SYNC_KEY] = sync.key
    return env
