"""Whatever bytes the app writes, it gets exactly one strict-JSON answer.

docs/FORMAT.md, "request.json".

Hypothesis writes request bodies (random bytes, JSON-like text with lone surrogate
escapes, non-finite and huge numbers, deep nesting, and request-shaped objects built
from those) and the provider answers each one. The answer must parse with a strict
parser (``tests/support/strict_json.py``), and no ``request.json``, ``.processing`` or temp
file may be left behind: an app never waits forever.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

from container_apps.sync import constants as C
from container_apps.tests.support.provider_rig import NOW, make_rig
from container_apps.tests.support.strict_json import loads_strict
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

_TOKENS = [
    "null", "true", "false", "0", "-0", "1.5", "1e308", "1e999", "-1e999", "NaN",
    "Infinity", "9" * (C.MAX_JSON_INT_DIGITS + 1), '"x"', r'"\udcff"', r'"a\ud800"',
    r'"\ud83d\ude00"', '"/app/data"', '"/app/data/"', '"/app/data/a.txt"', '"/etc"',
    '"/app/data/../x"', '"/r1en_system"', '"offline"', '"online"',
]  # fmt: skip
_SURROGATE_TEXT = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=3)
_STRINGS = st.one_of(st.text(max_size=8), _SURROGATE_TEXT).map(json.dumps)  # escapes them
_SCALARS = st.one_of(st.sampled_from(_TOKENS), st.integers().map(str), _STRINGS)


def _array(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"


def _object(members: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{k}:{v}" for k, v in members) + "}"


_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(_array),
        st.lists(st.tuples(_STRINGS, inner), max_size=4).map(_object),
    ),
    max_leaves=12,
)
_KEYS = st.sampled_from(['"archive_paths"', '"metadata"', '"request_id"', '"runtime"', '"x"'])
_PATH_LISTS = st.lists(st.one_of(st.sampled_from(_TOKENS), _VALUES), max_size=3).map(_array)
_REQUESTS = st.lists(st.tuples(_KEYS, st.one_of(_VALUES, _PATH_LISTS)), min_size=1, max_size=5).map(
    _object
)
_GOOD_PATHS = st.sampled_from(
    ['"/app/data"', '"/app/data/"', '"/app/data/a.txt"', '"/app/data//sub/"']
)
_SHAPED = st.tuples(
    st.lists(_GOOD_PATHS, min_size=1, max_size=3).map(_array),
    st.lists(st.tuples(_STRINGS, _VALUES), max_size=4).map(_object),
    _STRINGS,
).map(lambda t: _object([('"archive_paths"', t[0]), ('"metadata"', t[1]), ('"request_id"', t[2])]))
_DEEP = st.integers(1, 3000).map(
    lambda n: '{"archive_paths": ["/app/data"], "metadata": {"n": ' + "[" * n + "]" * n + "}}"
)
BODIES = st.one_of(
    st.binary(max_size=200),
    _VALUES.map(str.encode),
    _REQUESTS.map(str.encode),
    _SHAPED.map(str.encode),
    _DEEP.map(str.encode),
)
_ok_base = '{"archive_paths": ["/app/data/"], '


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=BODIES)
@example(body=(_ok_base + r'"metadata": {"k": "\udcff"}}').encode())
@example(body=(_ok_base + r'"request_id": "\udcff"}').encode())
@example(body=rb'{"archive_paths": ["/app/data/\udcff"]}')
@example(body=(_ok_base + '"metadata": {"n": ' + "[" * 968 + "]" * 968 + "}}").encode())
@example(body=(_ok_base + '"metadata": {"n": 1e999}}').encode())
@example(body=(_ok_base + '"metadata": {"n": 1}, "request_id": "r"}').encode())
def test_every_request_body_gets_exactly_one_strict_json_answer(
    tmp_path: Path, body: bytes
) -> None:
    base = tmp_path / str(next(_COUNTER))
    base.mkdir()
    rig = make_rig(base)
    (rig.control_dir / C.REQUEST_FILE).write_bytes(body)
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None
    event(f"answer {outcome.status}")
    response = loads_strict((rig.control_dir / C.RESPONSE_FILE).read_bytes())
    assert response["status"] == outcome.status
    names = sorted(os.listdir(rig.control_dir))
    if outcome.status == "ok":
        assert names == [C.RESPONSE_FILE]
        loads_strict(rig.registry.inner.hget(C.CHAINSTORE_HKEY, "key-1").encode())
        [entry] = rig.history.entries()
        loads_strict(entry.path.read_bytes())
    else:
        assert outcome.status == "error" and names == [C.INVALID_FILE, C.RESPONSE_FILE]
        loads_strict((rig.control_dir / C.INVALID_FILE).read_bytes())
    assert rig.publisher.publish_pending(NOW + 1) is None  # answered once, nothing left


_COUNTER = itertools.count()
