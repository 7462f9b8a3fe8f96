"""Records on the worker-internal topics ``zone.commands``, ``detections`` and ``hq.inputs``.

Everything that changes a zone's alert stage travels on one topic, keyed and partitioned by
zone, so exactly one worker (the owner of that partition) applies it to the zone's stage
machine, in order: station detections fanned out per impact zone, timer ticks (minimum
durations, off-delays), and operator actions (acknowledge, silence, escalate, clear).

>>> from gyeongbo.events import AlertEvent, Detection, decode_alert
>>> d = Detection(station="1018683", hazard="flood", level="caution", ts_ms=1, rule="r", value=1.0)
>>> c = ZoneCommand(kind="detection", zone="11030", detection=d)
>>> decode_command(encode_command(c)) == c
True

Both topics carry **lists**: one record holds every command (or detection) a worker produced
for one partition from one input record, so a burst of detections costs a few Kafka records,
not one per detection and zone (Faust handles only ~1–3k records/s per agent, docs/design.md §2).
The decoders also accept a single JSON object, the one-per-record form of earlier versions.

>>> decode_commands(encode_commands([c, c])) == [c, c]
True
>>> decode_commands(encode_command(c)) == [c]
True
>>> decode_detections(encode_detections([d])) == decode_detections(encode_command(d)) == [d]
True
"""

from __future__ import annotations

from typing import Literal

import msgspec

from gyeongbo.events import AlertEvent, Detection, decode_alert


class OperatorAction(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An operator's request (docs/design.md §4): who, when, why, and what."""

    action: Literal["ack", "silence", "escalate", "clear"]
    actor: str
    ts_ms: int
    reason: str = ""
    alert_id: str | None = None  # ack, clear
    hazard: str | None = None  # silence (None = every hazard), escalate
    level: str | None = None  # escalate
    duration_s: int | None = None  # silence
    exercise: bool = False
    cancel: bool = False  # clear as a CAP Cancel (issued in error) instead of an all-clear
    request_id: str = ""


class ZoneCommand(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    kind: Literal["detection", "tick", "action"]
    zone: str = ""
    detection: Detection | None = None
    action: OperatorAction | None = None
    now_ms: int = 0  # tick: the wall clock
    exercise_now_ms: int = 0  # tick: the drill clock (newest exercise reading seen)


class HQCommand(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    omit_defaults=True,
    tag="hq_command",
    tag_field="kind",
):
    """An operator's headquarters decision (docs/design.md §4), queued on ``hq.inputs`` among
    the alert events so the headquarters agent applies it in order, durably, once: confirm the
    standing proposal, or set ``stage`` (0..3) by hand. ``command_id`` makes a replay a no-op.

    >>> c = HQCommand(action="stage", stage=3, actor="op-kim", ts_ms=1, reason="r", command_id="x")
    >>> decode_hq_input(encode_hq_command(c)) == c
    True
    """

    action: Literal["confirm", "stage"]
    actor: str
    ts_ms: int
    reason: str
    command_id: str
    stage: int | None = None  # stage
    exercise: bool = False


class _Kind(msgspec.Struct):
    kind: str = ""


_enc = msgspec.json.Encoder()
_hq_dec = msgspec.json.Decoder(HQCommand)
_kind_dec = msgspec.json.Decoder(_Kind)
_dec = msgspec.json.Decoder(ZoneCommand)
_dec_list = msgspec.json.Decoder(list[ZoneCommand])
_det_dec = msgspec.json.Decoder(Detection)
_det_dec_list = msgspec.json.Decoder(list[Detection])


def encode_command(cmd: ZoneCommand) -> bytes:
    return _enc.encode(cmd)


def decode_command(raw: bytes) -> ZoneCommand:
    return _dec.decode(raw)


def encode_commands(cmds: list[ZoneCommand]) -> bytes:
    return _enc.encode(cmds)


def decode_commands(raw: bytes) -> list[ZoneCommand]:
    """A record of ``zone.commands``: a JSON array of commands (or one command object)."""
    if raw[:1] == b"[":
        return _dec_list.decode(raw)
    return [_dec.decode(raw)]


def encode_detections(dets: list[Detection]) -> bytes:
    return _enc.encode(dets)


def decode_detections(raw: bytes) -> list[Detection]:
    """A record of ``detections``: a JSON array of detections (or one detection object)."""
    if raw[:1] == b"[":
        return _det_dec_list.decode(raw)
    return [_det_dec.decode(raw)]


def zone_of_alert(alert_id: str) -> str:
    """The zone part of an alert id (``[exercise:]hazard:zone:first-raise-ts``).

    >>> zone_of_alert("flood:11030:2020-08-06T10:40:00+09:00")
    '11030'
    >>> zone_of_alert("exercise:pm25:seoul-center:2026-01-01T00:00:00+09:00")
    'seoul-center'
    """
    parts = alert_id.split(":")
    if parts[0] == "exercise":
        parts = parts[1:]
    if len(parts) < 3:
        raise ValueError(f"not an alert id: {alert_id!r}")
    return parts[1]


def encode_hq_command(cmd: HQCommand) -> bytes:
    return _enc.encode(cmd)


def decode_hq_input(raw: bytes) -> AlertEvent | HQCommand:
    """A record of ``hq.inputs``: an alert event (sent by the stage agent) or an operator's
    :class:`HQCommand` (``"kind": "hq_command"``)."""
    if _kind_dec.decode(raw).kind == "hq_command":
        return _hq_dec.decode(raw)
    return decode_alert(raw)
