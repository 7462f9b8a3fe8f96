"""The declared protocol of the detector set's per-kind steps, and the rows a step runs on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from detectors.params import DetectorParams
from gyeongbo.events import Detection

__all__ = ["Host", "KindStep", "StepRows"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class StepRows:
    """The readings of one step, one per station slot (``slot`` has no repeats), row-aligned.

    ``trusted`` (rows × 3): the channel's value is present and its sensor healthy;
    ``accept``: neither too late nor a duplicate; ``inorder``: accepted and not older than the
    slot's newest reading (the instantaneous rules use only these)."""

    slot: I64  # state slot (real, or the station's exercise slot)
    idx: I64  # registry index of the station
    ts: I64  # event time, epoch ms
    vals: F64  # rows × 3 channel values (NaN: absent)
    trusted: Bools
    accept: Bools
    inorder: Bools
    kind: npt.NDArray[np.uint8]  # kind code per row


class Host(Protocol):
    """The detector set as its steps see it (:class:`~detectors.engine.DetectorSet`): its
    parameters and station tables, the state of its slots, and how it makes detections."""

    params: DetectorParams
    n: int  # real stations: slots ≥ n are exercise slots
    stats: dict[str, int]
    interval_s: F64  # per station (registry order), s
    levels: F64  # per station: attention, caution, alert, serious (m; NaN: none)
    allowable: F64  # per station: the structural channels' allowables (NaN: none)
    min_count: I64  # per station: readings an hourly mean needs
    _has_levels: Bools  # per station: has any stage level
    _a: dict[str, npt.NDArray[Any]]  # the state, a column per field (state_format.FIELDS)
    _slot_station: I64  # station of each slot
    _chan_name: list[list[str]]  # [kind code][channel] → value name
    _lim: F64  # health limits [kind code, channel, limit]
    _lim_cols: list[F64]  # the same, a flat column per limit
    _closed: list[tuple[I64, I64, int, F64]]  # hours closed by this call
    _quakes: dict[tuple[bool, int, int, int], int]  # catalogue events seen

    def _gather(self, comp: str, key: I64) -> npt.NDArray[np.void]:
        """Records ``key`` of a component, copied."""

    def _scatter(self, comp: str, key: I64, recs: npt.NDArray[np.void]) -> None:
        """Write records ``key`` of a component back."""

    def _det(
        self,
        slot: int,
        station: int,
        ts: int,
        hazard: str,
        rule: str,
        level: int,
        value: float,
        threshold: float | None,
        *,
        public: bool = True,
        crossing: int | None = None,
        confidence: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> Detection:
        """One detection of ``slot`` (station index ``station``)."""

    def _changes(
        self,
        out: list[Detection],
        rows: npt.NDArray[np.intp],
        old: I64,
        new: I64,
        slot: I64,
        idx: I64,
        ts: I64,
        hazard: str,
        rule: str,
        value: F64,
        threshold: F64,
        details: Callable[[int], dict[str, Any]] | None = None,
    ) -> None:
        """A detection per row ``j`` where ``new[j] != old[j]`` (``rows[j]`` its step row)."""


class KindStep(Protocol):
    """The public rules of one station kind, on one step's rows."""

    #: The kind code (:data:`gyeongbo.batch.KIND_CODES`) whose rows the step takes.
    kind: int

    def run(self, ds: Host, rows: StepRows, out: list[Detection]) -> None:
        """Update the state of this kind's rows in ``rows`` and append one detection per
        change of a rule's level to ``out`` (in row order, rule by rule)."""
