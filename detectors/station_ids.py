"""Station id tables: each reading's station id → the registry's dense index, vectorized.

Registry ids are sorted; the dense index of an id is its position. A batch's ids are looked
up in one of three ways, the first that applies (:class:`StationIds`):

* ids of ≤ 8 Latin-1 code points (the usual case) are packed into 64-bit integers, which are
  their own keys: :class:`PackedTable`, one random read per id, no string compares;
* other ids by a 64-bit multiplicative hash of their code points (:func:`hash_ids`), in an
  open-addressing table of the registry's hashes (:class:`HashTable`), hits confirmed by
  comparing the ids;
* when the registry's own hashes collide, a binary search of the sorted ids.

Open addressing with linear probing at load ≤ 1/4 (Knuth, TAOCP vol. 3, §6.4, algorithm L),
built and probed in vectorized rounds (one round per probe step); the hash is
``Σ code_k · m_k mod 2⁶⁴`` with odd random multipliers ``m_k`` and the packed keys are spread
by Fibonacci hashing (multiplication by ⌊2⁶⁴/φ⌋, Knuth ibid.).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["HashTable", "PackedTable", "StationIds", "hash_ids", "pack_ids"]

I64 = npt.NDArray[np.int64]

HASH_MUL: npt.NDArray[np.uint64] = np.random.default_rng(0x6B79_2024).integers(
    1, 2**63, size=64, dtype=np.uint64
) | np.uint64(1)


class HashTable:
    """Open addressing (linear probing, load ≤ 1/4) from unique 64-bit hashes to 0…n-1.

    A sorted-array binary search costs ~17 cache misses per id at 10⁵ stations; this costs
    about two (the cell, then the id it names). Built and probed with vectorized rounds (one
    round per probe step).
    """

    def __init__(self, keys: npt.NDArray[np.uint64]) -> None:
        n = len(keys)
        bits = max(4, (4 * n - 1).bit_length())
        self.mask = (1 << bits) - 1
        self.shift = np.uint64(64 - bits)
        table = np.full(1 << bits, -1, dtype=np.int64)
        pos = (keys >> self.shift).astype(np.int64)
        pending = np.arange(n, dtype=np.int64)
        while len(pending):
            p = pos[pending]
            free = table[p] < 0
            cells, first = np.unique(p[free], return_index=True)
            winners = pending[free][first]
            table[cells] = winners
            placed = np.zeros(n, dtype=bool)
            placed[winners] = True
            pending = pending[~placed[pending]]
            pos[pending] = (pos[pending] + 1) & self.mask
        # 32-bit cells (half the cache footprint) when the indices fit.
        self.table = table.astype(np.int32) if n < 2**31 else table

    def find_ids(
        self, h: npt.NDArray[np.uint64], ids: npt.NDArray[np.str_], wanted: npt.NDArray[np.str_]
    ) -> I64:
        """Index ``i`` with ``ids[i] == wanted`` of each row (``h`` its hash), -1 when absent.

        Exact: a registry id sits in the probe run from its hash's home cell, before the
        first empty cell, so comparing the ids cell by cell along the run finds it, and an
        absent id runs into an empty cell. The ids are compared in the probe itself (one
        random read of the table and one of the ids per row; no stored hashes needed).
        """
        pos = (h >> self.shift).astype(np.intp)
        t = self.table[pos]
        # A -1 cell reads the last id: masked by t >= 0.
        hit = (t >= 0) & (ids[t] == wanted)
        out: I64 = np.where(hit, t, -1).astype(np.int64)
        cont = np.flatnonzero((t >= 0) & ~hit)  # another id in the cell: probe on
        while len(cont):
            pos[cont] = (pos[cont] + 1) & self.mask
            t = self.table[pos[cont]]
            hit = (t >= 0) & (ids[t] == wanted[cont])
            out[cont[hit]] = t[hit]
            cont = cont[(t >= 0) & ~hit]
        return out


class PackedTable:
    """Exact id → index for registries of short ids (≤ 8 code points, each < 256).

    Such an id packed into a uint64 (one byte per code point, NUL padded) is injective, so
    the packed id is its own key: a cell holds (key, index + 1) side by side and a probe
    compares integers in the cell it reads — one random read per id, no string compares.
    An id that does not pack (longer, or a code point ≥ 256) is in no such registry.
    Linear probing, load ≤ 1/4, positions from a multiplicative hash of the key.
    """

    def __init__(self, keys: npt.NDArray[np.uint64]) -> None:
        index = HashTable(keys * PACK_MUL)  # the same probe sequence as find() below
        self.shift = index.shift
        self.mask = index.mask
        t = index.table.astype(np.int64)
        cells = np.zeros((len(t), 2), dtype=np.uint64)  # (key, index + 1); 0: empty
        used = t >= 0
        cells[used, 0] = keys[t[used]]
        cells[:, 1] = (t + 1).astype(np.uint64)
        self.cells = cells

    @classmethod
    def build(cls, ids: npt.NDArray[Any]) -> PackedTable | None:
        packed = pack_ids(ids)
        if packed is None or not bool(packed[1].all()) or len(ids) == 0:
            return None
        return cls(packed[0])

    def find(self, wanted: npt.NDArray[Any]) -> I64 | None:
        """Index of each id, -1 when absent; None when ``wanted`` is not a ``<U`` array."""
        packed = pack_ids(wanted)
        if packed is None:
            return None
        key, ok = packed
        pos = ((key * PACK_MUL) >> self.shift).astype(np.intp)
        cell = self.cells.take(pos, axis=0)
        full = cell[:, 1] != 0
        hit = full & (cell[:, 0] == key)
        out: I64 = np.where(hit, cell[:, 1].astype(np.int64) - 1, -1)
        cont = np.flatnonzero(full & ~hit & ok)  # another id in the cell: probe on
        while len(cont):
            pos[cont] = (pos[cont] + 1) & self.mask
            cell = self.cells.take(pos[cont], axis=0)
            full = cell[:, 1] != 0
            hit = full & (cell[:, 0] == key[cont])
            out[cont[hit]] = cell[hit, 1].astype(np.int64) - 1
            cont = cont[full & ~hit]
        if not bool(ok.all()):
            out[~ok] = -1
        return out


PACK_MUL = np.uint64(0x9E37_79B9_7F4A_7C15)


def pack_ids(
    ids: npt.NDArray[Any],
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.bool_]] | None:
    """Each ``<U`` id as a uint64 of its first 8 code points' low bytes, and whether the id
    packs exactly (≤ 8 code points, each < 256); None when the dtype is not ``<U``."""
    if ids.dtype.kind != "U":
        return None
    m = len(ids)
    w = ids.dtype.itemsize // 4
    out = np.zeros((m, 8), dtype=np.uint8)
    if w == 0 or m == 0:
        return out.view(np.uint64).reshape(m), np.ones(m, dtype=bool)
    codes = np.ascontiguousarray(ids).view(np.uint32).reshape(m, w)
    k = min(w, 8)
    out[:, :k] = codes[:, :k]  # the low byte of each code point (checked below)
    acc = codes[:, 0] >> 8
    for j in range(1, w):  # any code point ≥ 256, or a 9th one
        acc |= codes[:, j] if j >= 8 else codes[:, j] >> 8
    return out.view(np.uint64).reshape(m), acc == 0


def hash_ids(ids: npt.NDArray[Any]) -> npt.NDArray[np.uint64] | None:
    """A 64-bit multiplicative hash of each ``<U`` id (None when the dtype does not suit).

    ``Σ code_k · m_k mod 2⁶⁴`` with odd random ``m_k``; NUL padding adds nothing, so ids
    of different widths hash alike. Hits are confirmed by comparing the ids themselves.
    """
    if ids.dtype.kind != "U":
        return None
    w = ids.dtype.itemsize // 4
    if w > len(HASH_MUL) or w == 0:
        return None
    codes = np.ascontiguousarray(ids).view(np.uint32).reshape(len(ids), w)
    if len(ids) <= 4096:  # one integer matmul (mod 2⁶⁴ like the loop): fewer calls
        hm: npt.NDArray[np.uint64] = np.dot(codes, HASH_MUL[:w])
        return hm
    h: npt.NDArray[np.uint64] = codes[:, 0] * HASH_MUL[0]
    for k in range(1, w):  # column by column: faster than a sum along the short axis
        h += codes[:, k] * HASH_MUL[k]
    return h


class StationIds:
    """The registry's sorted ids and the tables that map a batch's ids to their index."""

    def __init__(self, ids: npt.NDArray[np.str_]) -> None:
        self.ids = ids
        self.n = n = len(ids)
        #: Short ids (the usual case): packed into integers, looked up in one probe.
        self.packed = PackedTable.build(ids)
        id_hash = hash_ids(ids) if self.packed is None else None
        if id_hash is not None and len(np.unique(id_hash)) < n:
            id_hash = None  # a collision among the registry's ids: use searchsorted
        self.table = HashTable(id_hash) if id_hash is not None else None

    def lookup(self, station: npt.NDArray[np.str_]) -> tuple[I64, npt.NDArray[np.bool_]]:
        """Dense index of each id (clipped) and whether the id is in the registry."""
        m = len(station)
        if self.n == 0:
            return np.zeros(m, dtype=np.int64), np.zeros(m, dtype=bool)
        if self.packed is not None:
            found = self.packed.find(station)
            if found is not None:
                return np.maximum(found, 0), found >= 0
        h = hash_ids(station) if self.table is not None else None
        if h is None or self.table is None:
            idx = np.minimum(np.searchsorted(self.ids, station), self.n - 1).astype(np.int64)
            known: npt.NDArray[np.bool_] = self.ids[idx] == station
            return idx, known
        found = self.table.find_ids(h, self.ids, station)
        return np.maximum(found, 0), found >= 0

    def index_of(self, ids: list[str]) -> I64:
        """Indices of the known ids among ``ids`` (unknown ones left out)."""
        if not ids or self.n == 0:
            return np.zeros(0, dtype=np.int64)
        arr = np.array(ids, dtype=np.str_)
        i = np.minimum(np.searchsorted(self.ids, arr), self.n - 1)
        out: I64 = i[self.ids[i] == arr].astype(np.int64)
        return out
