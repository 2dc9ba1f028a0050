"""How ``car sync history`` lays out its rows (README, "Logs and output").

Three shapes of the same rows:
- a terminal: aligned columns fitted to its width, ``received`` spelled ``recv``. The
  CID, the widest cell, is shortened in the middle (its ``bafkrei`` head is the same for
  every snapshot, its tail tells them apart); when even a short CID does not fit, the
  least needed columns go first (``retired``, then ``size``, then ``downtime``), then
  the gaps narrow to one space, then long instance ids are shortened in the middle too,
  so 80 columns always fit;
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
_OPTIONAL = ("retired", "size", "downtime")
_MIN_CID = 16  # 8 head + "…" + 7 tail: still tells snapshots apart by eye
_MIN_INSTANCE = 12
_TERMINAL_DIR = {"received": "recv"}
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


@dataclass(slots=True)
class _Layout:
    columns: list[str]
    widths: dict[str, int]
    gap: str = "  "

    def width(self) -> int:
        return sum(self.widths[c] for c in self.columns) + len(self.gap) * (len(self.columns) - 1)

    def line(self, cells: dict[str, str]) -> str:
        shown = {c: shorten_middle(cells[c], self.widths[c]) for c in self.columns}
        return self.gap.join(shown[c].ljust(self.widths[c]) for c in self.columns).rstrip()


def shorten_middle(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters: head, ``…``, tail."""
    if len(text) <= width:
        return text
    tail = (width - 1) // 2
    return f"{text[: width - 1 - tail]}…{text[len(text) - tail :]}"


def render_tsv(rows: Sequence[HistoryRow]) -> list[str]:
    """Header plus one tab-separated line per row, whole values."""
    lines = ["\t".join(COLUMNS)]
    lines += ["\t".join(HistoryCells.of(row).cells[c] for c in COLUMNS) for row in rows]
    return lines


def render_table(rows: Sequence[HistoryRow], width: int | None) -> list[str]:
    """Aligned columns fitted to ``width`` (None: no limit, the ``--wide`` table)."""
    cells = [HistoryCells.of(row).cells for row in rows]
    for row in cells:
        row["dir"] = _TERMINAL_DIR.get(row["dir"], row["dir"])
    widths = {c: max([len(c), *(len(r[c]) for r in cells)]) for c in COLUMNS}
    layout = _Layout(list(COLUMNS), widths)
    if width is not None:
        _fit(layout, width)
    return [layout.line({c: c for c in COLUMNS}), *(layout.line(row) for row in cells)]


def _fit(layout: _Layout, width: int) -> None:
    """Narrow ``layout`` step by step (module docstring) until it fits ``width``."""
    whole_cid = layout.widths["cid"]
    layout.widths["cid"] = min(_MIN_CID, whole_cid)
    for column in _OPTIONAL:
        if layout.width() <= width:
            break
        layout.columns.remove(column)
    if layout.width() > width:
        layout.gap = " "
    excess = layout.width() - width
    if excess > 0:
        instance = layout.widths["instance"]
        layout.widths["instance"] = max(_MIN_INSTANCE, instance - excess, len("instance"))
    room = width - layout.width()
    layout.widths["cid"] = min(whole_cid, layout.widths["cid"] + max(room, 0))
