"""Encryption at rest for a sync set: the key file, its subkeys, the sealed framing.

Imports nothing from ``sync``: the tar path, the chunked format (``sync/chunks/``) and
the provider and consumer all use it (docs/FORMAT.md, "Encryption at rest").
"""
