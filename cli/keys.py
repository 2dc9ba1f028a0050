"""``car keys generate --out PATH``: the key pair for signed records (README, "Signed records").

The private key goes to PATH (mode 0600, for the provider's ``SYNC.SIGNING_KEY_FILE``),
the public key to ``PATH.pub`` and stdout (for the consumers' ``SYNC.TRUSTED_KEYS``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..sync.key_files import KeyFileError, generate_key_files, public_path
from .common import EXIT_RUNTIME, fail

keys_app = typer.Typer(no_args_is_help=True, help="Signing keys for signed sync records.")


@keys_app.command("generate")
def generate(
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="Private key file to create (mode 0600); PATH.pub is beside it."
        ),
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Replace PATH and PATH.pub if they exist.")
    ] = False,
) -> None:
    """Make an Ed25519 key pair: private key at PATH, public key in PATH.pub and printed."""
    try:
        line = generate_key_files(out, force=force)
    except KeyFileError as exc:
        raise fail(str(exc), EXIT_RUNTIME) from None
    typer.echo(f"private key: {out} (mode 0600; SYNC.SIGNING_KEY_FILE of the provider)", err=True)
    typer.echo(
        f"public key:  {public_path(out)} (add it to the consumers' SYNC.TRUSTED_KEYS)", err=True
    )
    typer.echo(line)
