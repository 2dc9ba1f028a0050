"""Signed records: what a provider signs and what a consumer checks (README, "Signed records").

Without signatures anyone who can write the registry can make every consumer of a key
apply any content: ``TRUSTED_NODE_IDS`` filters on a field the publisher declares
itself. A provider with ``SYNC.SIGNING_KEY_FILE`` therefore signs each record with
Ed25519, and a consumer with ``SYNC.TRUSTED_KEYS`` refuses, before it downloads anything,
a record that is unsigned, altered, signed by a key it does not trust, or signed for
another sync key (a valid record copied under another key).

What is signed is ``signed_payload``: the record exactly as the consumer parsed it
(every field it acts on: cid, version, timestamp, node id, metadata, runtime and the
whole manifest, whose digest, format, encryption and sizes drive the apply) plus the
sync key it is published under, encoded canonically (docs/FORMAT.md, "Signed records").
Only the ``signature`` object itself is left out. The signature travels in that new
optional field, which readers that do not know it (the older runner) ignore.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import replace

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..errors import SnapshotInvalid
from . import constants as C
from .records import RecordSignature, SyncRecord

PUBLIC_KEY_PREFIX = "car-ed25519:"
SIGNATURE_ALG = "ed25519"
# Names what the bytes are, so a signature over a record can never be taken for a
# signature over anything else this key might sign later.
SIGNED_PURPOSE = "car-sync-record-v1"
_PUBLIC_KEY_BYTES = 32
_SIGNATURE_BYTES = 64


class RecordUnverified(SnapshotInvalid):
    """A record this consumer must not apply: unsigned, untrusted, altered or replayed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, stage=C.STAGE_VALIDATION)


def public_key_text(key: Ed25519PublicKey) -> str:
    """The one-line form of a public key, as ``PATH.pub`` and ``SYNC.TRUSTED_KEYS`` hold it."""
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return PUBLIC_KEY_PREFIX + base64.b64encode(raw).decode("ascii")


def parse_public_key(text: str) -> Ed25519PublicKey:
    """A public key from its one-line form (surrounding whitespace ignored).

    Raises:
        ValueError: the text is not ``car-ed25519:`` and the base64 of 32 bytes.
    """
    body = text.strip()
    if not body.startswith(PUBLIC_KEY_PREFIX):
        raise ValueError(f"must start with {PUBLIC_KEY_PREFIX!r} (the line in PATH.pub)")
    try:
        raw = base64.b64decode(body[len(PUBLIC_KEY_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not valid base64 after the prefix") from None
    if len(raw) != _PUBLIC_KEY_BYTES:
        raise ValueError(f"holds {len(raw)} bytes; an Ed25519 public key is 32")
    return Ed25519PublicKey.from_public_bytes(raw)


def signed_payload(sync_key: str, record: SyncRecord) -> bytes:
    """The canonical bytes a record's signature covers.

    JSON with sorted keys, no whitespace and non-ASCII escaped, of ``{"purpose",
    "sync_key", "record"}``, where ``record`` is the record's own JSON object without its
    ``signature``. Built from the parsed record, so what is verified is exactly what the
    consumer acts on (fields it does not know are neither signed nor used).
    """
    body = record.to_dict()
    body.pop("signature", None)
    payload = {"purpose": SIGNED_PURPOSE, "sync_key": sync_key, "record": body}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii")


class RecordSigner:
    """Signs the records a provider publishes (``SYNC.SIGNING_KEY_FILE``)."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = public_key_text(private_key.public_key())

    def sign(self, sync_key: str, record: SyncRecord) -> SyncRecord:
        """``record`` carrying a signature for publishing under ``sync_key``."""
        unsigned = replace(record, signature=None)
        sig = self._key.sign(signed_payload(sync_key, unsigned))
        signature = RecordSignature(
            alg=SIGNATURE_ALG,
            public_key=self.public_key,
            sync_key=sync_key,
            sig=base64.b64encode(sig).decode("ascii"),
        )
        return replace(record, signature=signature)


class RecordVerifier:
    """Checks records against ``SYNC.TRUSTED_KEYS`` before anything is downloaded."""

    def __init__(self, trusted_keys: Iterable[str], sync_key: str) -> None:
        """Raises ValueError for a key that is not in the one-line form."""
        keys = [parse_public_key(text) for text in trusted_keys]
        self._trusted = {public_key_text(key): key for key in keys}
        self.sync_key = sync_key

    @property
    def trusted_count(self) -> int:
        return len(self._trusted)

    def verify(self, record: SyncRecord) -> None:
        """Accept ``record`` only if a trusted key signed it for this sync key.

        Raises:
            RecordUnverified: naming why (unsigned, unknown algorithm, untrusted key,
                signed for another sync key, or a signature that does not match).
        """
        sync_key = self.sync_key
        sig = record.signature
        if sig is None:
            raise RecordUnverified(
                "record is unsigned, and SYNC.TRUSTED_KEYS accepts only signed records"
            )
        if sig.alg != SIGNATURE_ALG:
            raise RecordUnverified(f"signature.alg {sig.alg!r} is not {SIGNATURE_ALG!r}")
        key = self._trusted.get(sig.public_key.strip())
        if key is None:
            raise RecordUnverified(
                f"record is signed by {sig.public_key!r}, which is not in SYNC.TRUSTED_KEYS"
            )
        if sig.sync_key != sync_key:
            raise RecordUnverified(
                f"record was signed for sync key {sig.sync_key!r}, not {sync_key!r} "
                "(a record copied from another key)"
            )
        try:
            raw = base64.b64decode(sig.sig, validate=True)
        except (binascii.Error, ValueError):
            raise RecordUnverified("signature.sig is not valid base64") from None
        if len(raw) != _SIGNATURE_BYTES:
            raise RecordUnverified(f"signature.sig holds {len(raw)} bytes, not 64")
        try:
            key.verify(raw, signed_payload(sync_key, record))
        except InvalidSignature:
            raise RecordUnverified(
                f"signature by {sig.public_key!r} does not match the record "
                f"(altered after signing, or signed for another sync key than {sync_key!r})"
            ) from None
