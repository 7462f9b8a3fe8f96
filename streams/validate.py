"""Parse and validate MQTT reading payloads against the v1 contract and the station registry.

The contract is docs/design.md §11.1. A message on ``{root}/{kind}/{station_id}`` carries one JSON
reading object or a JSON array of them; on ``{root}/{kind}/_batch`` (the §11.1 gateway batch)
or ``{root}/{kind}/_batch/{gateway_id}`` (the authenticated per-gateway batch topic, see
:mod:`gyeongbo.mqtt_auth`) each object names its own station. Every object::

    {"station": "1018683", "ts": "2020-08-06T10:50:00+09:00" | 1596678600000,
     "seq": 4211, "values": {"level_m": 8.36}, "exercise": false}

On the batch topic of a **drill gateway** (``drill: true`` in the registry, e.g.
``{root}/water_level/_batch/drill-lab``) every reading is an exercise whatever its
``exercise`` says, and may name any station of the topic's kind; a real gateway's drill data
says ``"exercise": true`` itself. Exercise is therefore never a field a publisher flips: the
ACL gives the drill gateway only its batch topics, and a payload that names a key twice
(``"exercise": true, "exercise": false``) is refused whole (``duplicate_key``).

``seq`` and ``exercise`` are optional; a seismic reading may add an ``event`` object
(``magnitude``, ``lat``, ``lon``, ``depth_km``: an earthquake catalogue entry). A valid event's
numbers go to :attr:`Reading.event` under their batch column names (``event_magnitude``, …,
:data:`gyeongbo.vocab.EVENT_COLUMNS`) and from there into the ``readings`` record
(:func:`readings_batch`); a malformed one rejects the reading with ``bad_event``.

Nothing is dropped silently: the result of :meth:`Validator.parse` is the valid readings plus
one :class:`Rejection` per invalid reading (or one for the whole payload when it cannot be
split into readings). Each rejection has a stable :class:`Reason` code and a message that says
what was wrong and what was expected. One reading gets one reason: the first check that
fails, in the order structure → station → time → values.

>>> from gyeongbo.registry import load_registry, REPO_ROOT
>>> v = Validator(load_registry(REPO_ROOT / "config" / "stations.yaml"))
>>> ok = v.parse("gyeongbo/v1/readings/water_level/1018683",
...     b'{"station": "1018683", "ts": 1596678600000, "values": {"level_m": 8.36}}',
...     received_ms=1596678601000)
>>> [(r.station, r.ts_ms, r.values) for r in ok.readings], ok.rejections
([('1018683', 1596678600000, {'level_m': 8.36})], [])
>>> bad = v.parse("gyeongbo/v1/readings/water_level/1018683",
...     b'{"station": "1018683", "ts": 1596678600000, "values": {"level_m": 99}}',
...     received_ms=1596678601000)
>>> bad.rejections[0].reason.value, bad.rejections[0].message
('out_of_range', 'level_m = 99.0 m is outside the physical range [-5.0, 60.0] m')
>>> q = v.parse("gyeongbo/v1/readings/seismic/KMA-GYEONGJU-ACC",
...     b'{"station": "KMA-GYEONGJU-ACC", "ts": 1596678600000, "values": {"pga_g": 0.2}, '
...     b'"event": {"magnitude": 5.8, "lat": 35.76, "lon": 129.19, "depth_km": 15}}',
...     received_ms=1596678601000)
>>> q.readings[0].event, q.events
({'event_magnitude': 5.8, 'event_lat': 35.76, 'event_lon': 129.19, 'event_depth_km': 15.0}, 1)
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from gyeongbo.batch import KIND_CODES, VALUE_NAMES, ReadingBatch
from gyeongbo.registry import Registry
from gyeongbo.vocab import EVENT_COLUMNS, EVENT_FIELDS, KIND_VALUES, PHYSICAL_RANGE, Kind

__all__ = [
    "REASON_HELP",
    "Limits",
    "Parsed",
    "Reading",
    "Reason",
    "Rejection",
    "TopicInfo",
    "Validator",
    "parse_topic",
    "readings_batch",
    "rejection_record",
]

BATCH = "_batch"


class Reason(StrEnum):
    """Why a payload or a reading was rejected (the ``reason`` of ``readings.rejected``)."""

    PAYLOAD_TOO_LARGE = "payload_too_large"
    BAD_TOPIC = "bad_topic"
    MALFORMED_JSON = "malformed_json"
    DUPLICATE_KEY = "duplicate_key"
    TOO_DEEP = "too_deep"
    EMPTY_BATCH = "empty_batch"
    TOO_MANY_READINGS = "too_many_readings"
    WRONG_TYPE = "wrong_type"
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    UNKNOWN_STATION = "unknown_station"
    STATION_MISMATCH = "station_mismatch"
    KIND_MISMATCH = "kind_mismatch"
    FOREIGN_STATION = "foreign_station"
    BAD_TS = "bad_ts"
    TS_FUTURE = "ts_future"
    TS_PAST = "ts_past"
    BAD_SEQ = "bad_seq"
    UNKNOWN_VALUE = "unknown_value"
    NON_FINITE = "non_finite"
    OUT_OF_RANGE = "out_of_range"
    BAD_EVENT = "bad_event"
    INTERNAL_ERROR = "internal_error"


#: One line per reason, for docs, ``gyeongbo bridge reasons`` and dashboards.
REASON_HELP: dict[Reason, str] = {
    Reason.PAYLOAD_TOO_LARGE: "the MQTT payload is larger than the bridge's limit",
    Reason.BAD_TOPIC: "the topic is not {root}/{kind}/{station_id|_batch[/gateway]}",
    Reason.MALFORMED_JSON: "the payload is not JSON (or not UTF-8, or a string is not Unicode)",
    Reason.DUPLICATE_KEY: "an object of the payload names a key twice (which one wins is "
    "undefined: the payload is refused whole)",
    Reason.TOO_DEEP: "the payload nests arrays or objects more than 16 levels deep",
    Reason.EMPTY_BATCH: "the payload is an empty JSON array",
    Reason.TOO_MANY_READINGS: "a batch holds more readings than the bridge's limit",
    Reason.WRONG_TYPE: "a field (or the reading itself) has the wrong JSON type",
    Reason.MISSING_FIELD: "a required field (station, ts, values) is missing or empty",
    Reason.UNKNOWN_FIELD: "the reading has a field the v1 contract does not define",
    Reason.UNKNOWN_STATION: "the station id is not in the station registry",
    Reason.STATION_MISMATCH: "the reading's station differs from the topic's station",
    Reason.KIND_MISMATCH: "the topic's kind differs from the station's kind in the registry",
    Reason.FOREIGN_STATION: "the station belongs to another gateway than the batch topic's",
    Reason.BAD_TS: "ts is neither RFC 3339 with an offset nor epoch milliseconds",
    Reason.TS_FUTURE: "ts is further in the future than the allowed clock skew",
    Reason.TS_PAST: "ts is further in the past than the allowed backfill window",
    Reason.BAD_SEQ: "seq is negative",
    Reason.UNKNOWN_VALUE: "a value name (unit) is not one of the station kind's",
    Reason.NON_FINITE: "a value is NaN or infinite",
    Reason.OUT_OF_RANGE: "a value is outside its physically possible range",
    Reason.BAD_EVENT: "a seismic event object is malformed",
    Reason.INTERNAL_ERROR: "the bridge failed on this payload (a bug: the payload is kept)",
}

_FIELDS = frozenset({"station", "ts", "seq", "values", "exercise", "event"})
#: Deepest nesting accepted (a gateway batch needs 3: array, reading, values).
MAX_DEPTH = 16
#: Payloads up to this size find their structural colons with a regular expression; larger
#: ones with numpy (fixed cost ~30 µs, ~10 µs per 1,000 readings).
_SMALL = 2048
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"')
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)


@dataclass(frozen=True)
class Limits:
    """Validation limits (configurable through :class:`streams.bridge_config.BridgeSettings`)."""

    max_payload_bytes: int = 1_048_576
    max_batch_readings: int = 20_000
    #: Allowed clock skew: a ts later than received + this is rejected.
    max_future_s: float = 300.0
    #: Backfill window: a gateway that buffered through an outage may send readings this old.
    max_past_s: float = 7 * 86_400.0


@dataclass(frozen=True)
class TopicInfo:
    kind: Kind
    #: The station of a single-station topic; None on a batch topic.
    station: str | None
    #: The gateway of a per-gateway batch topic (``…/_batch/{gateway}``), else None.
    gateway: str | None


def parse_topic(topic: str, root: str) -> TopicInfo | str:
    """A :class:`TopicInfo`, or a message saying why the topic is not a readings topic."""
    prefix = root.rstrip("/") + "/"
    if not topic.startswith(prefix):
        return f"topic {topic!r} is not under {prefix!r}"
    parts = topic[len(prefix) :].split("/")
    expected = f"expected {prefix}{{kind}}/{{station_id}} or {prefix}{{kind}}/_batch[/{{gateway}}]"
    if len(parts) not in (2, 3) or not all(parts):
        return f"topic {topic!r}: {expected}"
    try:
        kind = Kind(parts[0])
    except ValueError:
        return f"topic {topic!r}: unknown kind {parts[0]!r}; kinds are {[k.value for k in Kind]}"
    if parts[1] == BATCH:
        return TopicInfo(kind, None, parts[2] if len(parts) == 3 else None)
    if len(parts) == 3:
        return f"topic {topic!r}: {expected}"
    return TopicInfo(kind, parts[1], None)


@dataclass(slots=True)
class Reading:
    """One valid reading (its station is in the registry and its values are checked)."""

    station: str
    kind: int  # KIND_CODES
    ts_ms: int
    seq: int  # -1 when absent
    exercise: bool
    values: dict[str, float]
    #: A catalogue event's numbers by batch column (``event_magnitude``, …); empty if none.
    event: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: Reason
    message: str
    #: Position in a batch payload; None when the whole payload is rejected.
    index: int | None = None
    station: str | None = None
    #: The parsed reading object (item-level rejections).
    item: Any = None


@dataclass(slots=True)
class Parsed:
    readings: list[Reading] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    #: Valid seismic ``event`` objects among :attr:`readings` (carried in the event columns).
    events: int = 0


class _Bad(Exception):
    def __init__(self, reason: Reason, message: str) -> None:
        self.reason = reason
        self.message = message


class _DuplicateKey(ValueError):
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise _DuplicateKey(dup)
    return d


def _decode(decoder: msgspec.json.Decoder[Any], payload: bytes) -> tuple[Any, bool]:
    """The JSON document of ``payload`` and whether its objects were checked for repeated
    keys already; or :class:`_Bad` with the reason it is refused.

    msgspec decodes strict JSON, UTF-8 only, and refuses strings that are not Unicode (a
    lone UTF-16 surrogate escape such as ``\\ud800``). What it refuses is read again by the
    standard library, which also reads NaN/Infinity literals (rejected per reading as
    non_finite: a clearer reason than "malformed") and checks keys as it goes, but then every
    string must be Unicode. msgspec keeps the last of two equal keys, so its documents are
    checked apart (:class:`_Tally`): ``{"exercise": true, "exercise": false}`` would
    otherwise be a real reading.
    """
    try:
        return decoder.decode(payload), False
    except RecursionError:
        raise _Bad(Reason.TOO_DEEP, f"nesting deeper than {MAX_DEPTH} levels") from None
    except msgspec.DecodeError:
        pass
    try:
        doc = json.loads(payload, object_pairs_hook=_unique_pairs)
    except _DuplicateKey as dup:
        raise _Bad(Reason.DUPLICATE_KEY, _dup_message(str(dup))) from None
    except RecursionError:
        raise _Bad(Reason.TOO_DEEP, f"nesting deeper than {MAX_DEPTH} levels") from None
    except ValueError as err:  # UnicodeDecodeError included: not UTF-8
        raise _Bad(Reason.MALFORMED_JSON, f"not valid JSON: {err}") from None
    try:
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as err:
        bad = err.object[err.start : err.end]
        raise _Bad(
            Reason.MALFORMED_JSON,
            f"a string holds {bad.encode('unicode_escape').decode()}, a lone UTF-16 "
            "surrogate: not a Unicode character (RFC 8259 §8.2; RFC 7493 §2.1)",
        ) from None
    return doc, True


def _dup_message(key: str) -> str:
    return (
        f"the key {key[:64]!r} appears twice in one object; JSON parsers disagree on which "
        "value wins, so the payload is refused (RFC 8259 §4)"
    )


class _Tally:
    """Keys, colons inside strings and depth of a decoded document, counted as its readings
    are validated: a valid reading's shape is known (its keys, its values' names and its
    ``ts`` string; only a catalogue event may hold more, and is walked), anything else is
    walked.

    A decoded object keeps one value per key, so the document repeats a key exactly when
    the payload has more name separators (``:`` outside strings: one per member) than the
    decoded objects have keys. Without ``\\u`` escapes, the colons inside strings of the
    payload are those of the decoded strings, so the separators are every ``:`` of the
    payload less those; with escapes, they are counted on the text
    (:func:`structural_colons`)."""

    __slots__ = ("colons", "depth", "keys")

    def __init__(self) -> None:
        self.keys = self.colons = self.depth = 0

    def walk(self, node: Any, level: int) -> None:
        """Anything else (a rejected reading, the payload when it is no reading)."""
        nodes = [node]
        while nodes:
            nxt: list[Any] = []
            for n in nodes:
                if type(n) is str:
                    self.colons += n.count(":")
                    continue
                if type(n) is dict:
                    self.keys += len(n)
                    self.colons += sum(k.count(":") for k in n)
                    children: Any = n.values()
                elif type(n) is list:
                    children = n
                else:
                    continue
                self.depth = max(self.depth, level)
                nxt += [v for v in children if type(v) in (dict, list, str)]
            if self.depth > MAX_DEPTH:
                return
            nodes = nxt
            level += 1

    def problem(self, payload: bytes, *, pairs_checked: bool) -> Rejection | None:
        if self.depth > MAX_DEPTH:
            return Rejection(Reason.TOO_DEEP, f"nesting deeper than {MAX_DEPTH} levels")
        if pairs_checked:
            return None
        if b"\\u" in payload:
            members = structural_colons(payload)
        else:
            members = payload.count(b":") - self.colons
        if members == self.keys:
            return None
        try:  # name the key, for the message
            json.loads(payload, object_pairs_hook=_unique_pairs)
        except _DuplicateKey as dup:
            return Rejection(Reason.DUPLICATE_KEY, _dup_message(str(dup)))
        except (ValueError, RecursionError):
            pass
        return Rejection(Reason.DUPLICATE_KEY, "an object of the payload repeats a key")


def structural_colons(payload: bytes) -> int:
    r"""How many ``:`` of a valid JSON text separate a member's name from its value (the
    ones outside strings).

    >>> structural_colons(b'{"ts": "10:50", "a\\\\": {"b:c": "\\":"}}')
    3
    """
    if len(payload) <= _SMALL:
        return _STRING.sub(b"", payload).count(b":")
    a = np.frombuffer(payload, np.uint8)
    quotes = np.flatnonzero(a == 0x22)
    backslash = a == 0x5C
    if len(quotes) and bool(backslash.any()):
        # a quote ends or starts a string unless an odd run of backslashes precedes it
        pos = np.arange(len(a))
        last_other = np.maximum.accumulate(np.where(backslash, -1, pos))
        prev = np.maximum(quotes - 1, 0)
        run = np.where(quotes > 0, prev - last_other[prev], 0)
        quotes = quotes[run % 2 == 0]
    colons = np.flatnonzero(a == 0x3A)
    inside = np.searchsorted(quotes, colons) % 2 == 1
    return int(np.count_nonzero(~inside))


def _num(v: Any) -> bool:
    return isinstance(v, float | int) and not isinstance(v, bool)


def _jtype(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _fmt(v: float) -> str:
    return repr(float(v))


class Validator:
    """Parses payloads for one registry; safe to reuse, holds no per-message state."""

    def __init__(
        self,
        registry: Registry,
        limits: Limits | None = None,
        *,
        topic_root: str = "gyeongbo/v1/readings",
    ) -> None:
        self.registry = registry
        self.limits = limits or Limits()
        self.topic_root = topic_root
        self._stations = {sid: (st.kind, st.gateway) for sid, st in registry.stations.items()}
        #: Gateways whose every reading is an exercise (the ACL lets them publish only on
        #: their own batch topics, so the topic names the publisher).
        self._drill = frozenset(g for g, gw in registry.gateways.items() if gw.drill)
        self._allowed = {k: frozenset(v) for k, v in KIND_VALUES.items()}
        self._decoder = msgspec.json.Decoder()

    # -- whole payload ------------------------------------------------------------------
    def parse(self, topic: str, payload: bytes, *, received_ms: int) -> Parsed:
        out = Parsed()
        lim = self.limits
        if len(payload) > lim.max_payload_bytes:
            out.rejections.append(
                Rejection(
                    Reason.PAYLOAD_TOO_LARGE,
                    f"payload is {len(payload)} bytes; the limit is {lim.max_payload_bytes} bytes "
                    "(split the batch)",
                )
            )
            return out
        info = parse_topic(topic, self.topic_root)
        if isinstance(info, str):
            out.rejections.append(Rejection(Reason.BAD_TOPIC, info))
            return out
        try:
            doc, pairs_checked = _decode(self._decoder, payload)
        except _Bad as bad:
            out.rejections.append(Rejection(bad.reason, bad.message))
            return out
        tally = _Tally()
        batch = self._items(doc, out)
        if batch is None:
            return out
        items, single = batch
        level = 1 if single else 2
        if not single:
            tally.depth = 1
        lo = received_ms - int(lim.max_past_s * 1000)
        hi = received_ms + int(lim.max_future_s * 1000)
        keys = colons = 0
        for i, item in enumerate(items):
            try:
                r = self._reading(item, info, lo, hi, received_ms, out)
            except _Bad as bad:
                tally.walk(item, level)
                sid = item.get("station") if isinstance(item, dict) else None
                out.rejections.append(
                    Rejection(
                        bad.reason,
                        bad.message,
                        index=None if single else i,
                        station=sid if isinstance(sid, str) else None,
                        item=item,
                    )
                )
                continue
            # a valid reading's shape is known (see _Tally.reading), inlined: it is per reading
            keys += len(item) + len(item["values"])
            if type(item["ts"]) is str:
                colons += item["ts"].count(":")
            if r.event or "event" in item:
                tally.walk(item["event"], level + 1)
            out.readings.append(r)
        tally.keys += keys
        tally.colons += colons
        if out.readings:
            tally.depth = max(tally.depth, level + 1)
        problem = tally.problem(payload, pairs_checked=pairs_checked)
        if problem is not None:  # the whole payload is refused: nothing of it is taken
            return Parsed(rejections=[problem])
        return out

    def _items(self, doc: Any, out: Parsed) -> tuple[list[Any], bool] | None:
        """The readings of a decoded payload and whether it was a single object (not a batch
        array); None, with the rejection added to ``out``, when it is neither or out of
        bounds."""
        lim = self.limits
        if isinstance(doc, dict):
            items: list[Any] = [doc]
            single = True
        elif isinstance(doc, list):
            items = doc
            single = False
            if not items:
                out.rejections.append(Rejection(Reason.EMPTY_BATCH, "the batch array is empty"))
                return None
            if len(items) > lim.max_batch_readings:
                out.rejections.append(
                    Rejection(
                        Reason.TOO_MANY_READINGS,
                        f"the batch holds {len(items)} readings; the limit is "
                        f"{lim.max_batch_readings}",
                    )
                )
                return None
        else:
            out.rejections.append(
                Rejection(
                    Reason.WRONG_TYPE,
                    f"payload must be a JSON object or an array of objects, got {_jtype(doc)}",
                )
            )
            return None
        return items, single

    # -- one reading ----------------------------------------------------------------------
    def _reading(
        self, item: Any, info: TopicInfo, lo: int, hi: int, received_ms: int, out: Parsed
    ) -> Reading:
        if not isinstance(item, dict):
            raise _Bad(Reason.WRONG_TYPE, f"a reading must be a JSON object, got {_jtype(item)}")
        extra = item.keys() - _FIELDS
        if extra:
            raise _Bad(
                Reason.UNKNOWN_FIELD,
                f"unknown field(s) {sorted(extra)}; v1 readings have {sorted(_FIELDS)}",
            )
        for name in ("station", "ts", "values"):
            if name not in item:
                raise _Bad(Reason.MISSING_FIELD, f"missing required field {name!r}")
        station, kind, drill = self._identity(item["station"], info)
        ts_ms = self._ts(item["ts"])
        if ts_ms > hi:
            raise _Bad(
                Reason.TS_FUTURE,
                f"ts is {(ts_ms - received_ms) / 1000:.0f} s ahead of the bridge clock; at most "
                f"{self.limits.max_future_s:.0f} s of skew is allowed",
            )
        if ts_ms < lo:
            hint = ""
            if 0 <= ts_ms < 10**11:
                hint = " (epoch seconds sent where epoch milliseconds are expected?)"
            raise _Bad(
                Reason.TS_PAST,
                f"ts is {(received_ms - ts_ms) / 1000:.0f} s old; readings older than "
                f"{self.limits.max_past_s:.0f} s are not accepted{hint}",
            )
        seq = item.get("seq")
        if seq is None:
            seq = -1
        elif not isinstance(seq, int) or isinstance(seq, bool):
            raise _Bad(Reason.WRONG_TYPE, f"seq must be an integer, got {_jtype(seq)}")
        elif seq < 0 or seq >= 2**63:
            raise _Bad(Reason.BAD_SEQ, f"seq must be in [0, 2^63), got {seq}")
        exercise = item.get("exercise", False)
        if exercise is None:
            exercise = False
        elif not isinstance(exercise, bool):
            raise _Bad(Reason.WRONG_TYPE, f"exercise must be true or false, got {_jtype(exercise)}")
        exercise = exercise or drill  # a drill gateway's reading is an exercise, whatever it says
        values = item["values"]
        if not isinstance(values, dict):
            raise _Bad(Reason.WRONG_TYPE, f"values must be an object, got {_jtype(values)}")
        if not values:
            raise _Bad(Reason.MISSING_FIELD, "values is empty")
        clean = self._values(values, kind)
        event: dict[str, float] = {}
        if "event" in item:
            if kind is not Kind.SEISMIC:
                raise _Bad(Reason.UNKNOWN_FIELD, "only seismic readings may carry an event")
            event = self._event(item["event"])
            out.events += 1
        return Reading(station, KIND_CODES[kind], ts_ms, seq, exercise, clean, event)

    def _identity(self, station: Any, info: TopicInfo) -> tuple[str, Kind, bool]:
        """The reading's station, its kind and whether its topic is a drill gateway's: the
        station must be in the registry and belong to the topic's station, kind and gateway
        (a drill gateway may relay any station)."""
        if not isinstance(station, str):
            raise _Bad(Reason.WRONG_TYPE, f"station must be a string, got {_jtype(station)}")
        known = self._stations.get(station)
        if known is None:
            raise _Bad(Reason.UNKNOWN_STATION, f"station {station!r} is not in the registry")
        kind, gateway = known
        if info.station is not None and station != info.station:
            raise _Bad(
                Reason.STATION_MISMATCH,
                f"reading for station {station!r} published on the topic of {info.station!r}",
            )
        if kind is not info.kind:
            raise _Bad(
                Reason.KIND_MISMATCH,
                f"station {station!r} is a {kind.value} station, published under "
                f"{info.kind.value!r}",
            )
        drill = info.gateway in self._drill
        if info.gateway is not None and gateway != info.gateway and not drill:
            raise _Bad(
                Reason.FOREIGN_STATION,
                f"station {station!r} belongs to gateway {gateway!r}, not {info.gateway!r}",
            )
        return station, kind, drill

    def _values(self, values: dict[str, Any], kind: Kind) -> dict[str, float]:
        """The values of a ``kind`` reading as floats: each a value of the kind, a finite
        number within its physical range."""
        allowed = self._allowed[kind]
        clean: dict[str, float] = {}
        for name, v in values.items():
            if name not in allowed:
                units = ", ".join(f"{n} ({u})" for n, u in KIND_VALUES[kind].items())
                raise _Bad(
                    Reason.UNKNOWN_VALUE,
                    f"{name!r} is not a {kind.value} value; expected {units}",
                )
            if not _num(v):
                raise _Bad(Reason.WRONG_TYPE, f"{name} must be a number, got {_jtype(v)}")
            f = float(v)
            if not math.isfinite(f):
                raise _Bad(Reason.NON_FINITE, f"{name} is {f!r}; values must be finite")
            rlo, rhi = PHYSICAL_RANGE[name]
            if not rlo <= f <= rhi:
                unit = KIND_VALUES[kind][name]
                raise _Bad(
                    Reason.OUT_OF_RANGE,
                    f"{name} = {_fmt(f)} {unit} is outside the physical range "
                    f"[{_fmt(rlo)}, {_fmt(rhi)}] {unit}",
                )
            clean[name] = f
        return clean

    @staticmethod
    def _ts(ts: Any) -> int:
        if isinstance(ts, int) and not isinstance(ts, bool):
            return ts
        if isinstance(ts, str):
            try:
                t = dt.datetime.fromisoformat(ts)
            except ValueError:
                raise _Bad(
                    Reason.BAD_TS,
                    f"ts {ts[:64]!r} is not RFC 3339 (e.g. 2020-08-06T10:50:00+09:00)",
                ) from None
            if t.tzinfo is None:
                raise _Bad(Reason.BAD_TS, f"ts {ts[:64]!r} has no UTC offset (add +09:00 or Z)")
            return (t - _EPOCH) // _MS
        raise _Bad(
            Reason.WRONG_TYPE,
            f"ts must be an RFC 3339 string or epoch milliseconds (integer), got {_jtype(ts)}",
        )

    @staticmethod
    def _event(ev: Any) -> dict[str, float]:
        """The event's numbers by batch column; every field is required and range-checked."""
        if not isinstance(ev, dict):
            raise _Bad(Reason.BAD_EVENT, f"event must be an object, got {_jtype(ev)}")
        out: dict[str, float] = {}
        for name, (_unit, lo, hi) in EVENT_FIELDS.items():
            v: Any = ev.get(name)
            if not _num(v) or not math.isfinite(float(v)) or not lo <= float(v) <= hi:
                raise _Bad(Reason.BAD_EVENT, f"event.{name} must be a number in [{lo}, {hi}]")
            out[EVENT_COLUMNS[name]] = float(v)
        return out


def readings_batch(
    readings: list[Reading],
    received_ms: list[int],
    positions: Mapping[str, int] | None = None,
    digest: int = 0,
) -> ReadingBatch:
    """The columnar batch of valid readings (the bridge's ``readings`` record payload): value
    columns in :data:`~gyeongbo.batch.VALUE_NAMES` order, catalogue events in their columns.

    With ``positions`` (:meth:`~gyeongbo.registry.Registry.index_of`) and its registry's
    ``digest``, the batch also carries each station's registry position (valid readings name
    registry stations), which a worker with the same registry uses instead of looking the
    ids up."""
    n = len(readings)
    cols: dict[str, npt.NDArray[np.float64]] = {}
    for i, r in enumerate(readings):
        for name, v in r.values.items():
            col = cols.get(name)
            if col is None:
                col = cols[name] = np.full(n, np.nan)
            col[i] = v
        if r.event:
            for name, v in r.event.items():
                col = cols.get(name)
                if col is None:
                    col = cols[name] = np.full(n, np.nan)
                col[i] = v
    return ReadingBatch(
        station=np.array([r.station for r in readings], dtype=np.str_),
        kind=np.fromiter((r.kind for r in readings), np.uint8, n),
        ts_ms=np.fromiter((r.ts_ms for r in readings), np.int64, n),
        seq=np.fromiter((r.seq for r in readings), np.int64, n),
        exercise=np.fromiter((r.exercise for r in readings), np.bool_, n),
        values={k: cols[k] for k in VALUE_NAMES if k in cols},
        received_ms=np.array(received_ms, dtype=np.int64),
        station_index=(
            None
            if positions is None
            else np.fromiter((positions[r.station] for r in readings), np.int32, n)
        ),
        index_digest=0 if positions is None else digest,
    )


#: Whole payloads larger than this are stored truncated in ``readings.rejected`` (with their
#: size and SHA-256), so one rejection record always fits a Kafka request.
MAX_STORED_RAW = 256 * 1024


def rejection_record(
    rej: Rejection, *, topic: str, payload: bytes, received_ms: int
) -> dict[str, Any]:
    """The JSON document published to ``readings.rejected`` for one rejection.

    ``payload`` is the raw MQTT payload as text (``payload_encoding: "text"``) or base64 when
    it is not UTF-8; for a reading rejected out of a batch array it is that reading re-serialized
    (``scope: "reading"``, with its ``index``), so one bad reading does not copy the batch.
    """
    doc: dict[str, Any] = {
        "reason": rej.reason.value,
        "message": rej.message,
        "topic": topic,
        "received_ms": received_ms,
        "received": dt.datetime.fromtimestamp(received_ms / 1000, dt.UTC).isoformat(
            timespec="milliseconds"
        ),
        "station": rej.station,
    }
    if rej.index is not None:
        doc["scope"] = "reading"
        doc["index"] = rej.index
        text = json.dumps(rej.item, ensure_ascii=False, allow_nan=True)
        if len(text) > MAX_STORED_RAW:
            doc["payload_truncated"] = True
            doc["payload_sha256"] = hashlib.sha256(text.encode()).hexdigest()
            text = text[:MAX_STORED_RAW]
        doc["payload"] = text
        doc["payload_encoding"] = "text"
        return doc
    doc["scope"] = "payload"
    doc["payload_bytes"] = len(payload)
    raw = payload
    if len(payload) > MAX_STORED_RAW:
        raw = payload[:MAX_STORED_RAW]
        doc["payload_truncated"] = True
        doc["payload_sha256"] = hashlib.sha256(payload).hexdigest()
    try:
        doc["payload"] = raw.decode("utf-8")
        doc["payload_encoding"] = "text"
    except UnicodeDecodeError:
        doc["payload"] = base64.b64encode(raw).decode("ascii")
        doc["payload_encoding"] = "base64"
    return doc
