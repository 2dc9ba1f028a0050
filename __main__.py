"""``python -m container_apps`` is the ``car`` command."""

from container_apps.cli import main

main()
