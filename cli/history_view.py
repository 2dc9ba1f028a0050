"""How ``car sync history`` lays out its rows (README, "Logs and output").

Three shapes of the same rows:
- a terminal: aligned columns fitted to its width. The CID, the widest cell, is shortened
  in the middle (its ``bafkrei`` head is the same for every snapshot, its tail tells them
  apart); when even a short CID does not fit, the least needed columns go first
  (``retired``, then ``downtime``, then ``size``);
- ``--wide``: every column with the whole CID, whatever the width;
- not a terminal (a pipe, a file): a header line and tab-separated cells, whole values and
  no box drawing, so ``cut -f`` and ``awk -F'\\t'`` work.
``--json`` (in ``cli/sync.py``) prints the entries as written, with whole CIDs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..sync.status import HistoryRow
from .formats import human_size, iso_utc, seconds

COLUMNS = ("when", "instance", "dir", "version", "size", "downtime", "retired", "cid")
# Dropped in this order when a terminal is too narrow for every column and a short CID.
_OPTIONAL = ("retired", "downtime", "size")
_GAP = "  "
_MIN_CID = 16  # 8 head + "…" + 7 tail: still tells snapshots apart by eye
# A history entry's deletion.deletion_succeeded, as the table shows it.
_RETIRED = {True: "yes", False: "failed", None: "-"}


@dataclass(frozen=True, slots=True)
class HistoryCells:
    """One row as text, every cell whole."""

    cells: dict[str, str]

    @classmethod
    def of(cls, row: HistoryRow) -> HistoryCells:
        entry = row.record
        return cls(
            {
                "when": iso_utc(entry.timestamp),
                "instance": row.instance_id,
                "dir": row.direction,
                "version": str(entry.version),
                "size": human_size(entry.archive_size),
                "downtime": seconds(entry.downtime_seconds),
                "retired": _RETIRED[entry.deletion.deletion_succeeded],
                "cid": entry.cid or "-",
            }
        )


def shorten_cid(cid: str, width: int) -> str:
    """``cid`` in at most ``width`` characters: head, ``…``, tail."""
    if len(cid) <= width:
        return cid
    tail = (width - 1) // 2
    return f"{cid[: width - 1 - tail]}…{cid[len(cid) - tail :]}"


def render_tsv(rows: Sequence[HistoryRow]) -> list[str]:
    """Header plus one tab-separated line per row, whole values."""
    lines = ["\t".join(COLUMNS)]
    lines += ["\t".join(HistoryCells.of(row).cells[c] for c in COLUMNS) for row in rows]
    return lines


def render_table(rows: Sequence[HistoryRow], width: int | None) -> list[str]:
    """Aligned columns fitted to ``width`` (None: no limit, the ``--wide`` table)."""
    cells = [HistoryCells.of(row).cells for row in rows]
    widths = {c: max([len(c), *(len(r[c]) for r in cells)]) for c in COLUMNS}
    columns = list(COLUMNS)
    if width is not None:
        columns, widths["cid"] = _fit(columns, widths, width)
    lines = [_line({c: c for c in columns}, columns, widths)]
    for row in cells:
        shown = {**row, "cid": shorten_cid(row["cid"], widths["cid"])}
        lines.append(_line(shown, columns, widths))
    return lines


def _fit(columns: list[str], widths: dict[str, int], width: int) -> tuple[list[str], int]:
    """Columns that fit in ``width`` with a CID of at least ``_MIN_CID``; the CID width."""
    for drop in range(len(_OPTIONAL) + 1):
        kept = [c for c in columns if c not in _OPTIONAL[:drop]]
        others = sum(widths[c] for c in kept if c != "cid") + len(_GAP) * (len(kept) - 1)
        room = width - others
        if room >= min(_MIN_CID, widths["cid"]):
            return kept, min(room, widths["cid"])
    return kept, min(_MIN_CID, widths["cid"])  # nothing fits: the terminal wraps


def _line(cells: dict[str, str], columns: list[str], widths: dict[str, int]) -> str:
    return _GAP.join(cells[c].ljust(widths[c]) for c in columns).rstrip()
