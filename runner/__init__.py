"""The runner's parts: config, the Docker engine, the app container and its lifecycle.

``container_app_runner.py`` composes them with the volume and sync mixins.
"""
