"""Every exception we define lives under CarError (docker-py's StreamParseError slipped out)."""

from __future__ import annotations

import inspect

from container_apps import errors


def test_every_error_subclasses_car_error() -> None:
    classes = [
        c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__
    ]
    assert len(classes) > 10
    assert all(issubclass(c, errors.CarError) for c in classes)


def test_transient_errors_are_marked_transient() -> None:
    assert issubclass(errors.StoreUnavailable, errors.TransientError)
    assert issubclass(errors.RegistryUnavailable, errors.TransientError)
    assert not issubclass(errors.BlobNotFound, errors.TransientError)


def test_blob_not_found_is_a_key_error_with_a_readable_message() -> None:
    err = errors.BlobNotFound("bafkreiabc")
    assert isinstance(err, KeyError)
    assert str(err) == "blob bafkreiabc not found"
