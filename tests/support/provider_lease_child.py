"""A provider that publishes once on a real registry, then is SIGKILLed holding the lease.

``python -m container_apps.tests.support.provider_lease_child TMP REGISTRY_URL``: a
``SnapshotPublisher`` (instance ``killed-instance``, a 2 s lease) publishes one request,
then pauses (``sigkill.pause``) so the test kills it while its lease is live.
"""

from __future__ import annotations

import sys
from pathlib import Path

from container_apps.registries.factory import open_registry
from container_apps.tests.support.provider_rig import NOW, make_rig
from container_apps.tests.support.sigkill import pause

if __name__ == "__main__":
    tmp, url = Path(sys.argv[1]), sys.argv[2]
    rig = make_rig(
        tmp, registry=open_registry(url), instance_id="killed-instance", lease_seconds=2.0
    )
    rig.request({"archive_paths": ["/app/data"]})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.status == "ok", outcome
    pause(tmp)
