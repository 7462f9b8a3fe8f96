"""The CAP feed: one XML document per public transition in a folder, plus a JSON index.

:class:`CapFeed` writes ``<folder>/<identifier>.xml`` for each public transition (idempotent:
the file name derives from the transition's ``event_id``, so a replayed event writes nothing
new), fills ``references`` from the earlier documents of the same alert (matched on
``incidents``, which carries the alert id), and rewrites ``<folder>/index.json`` atomically.

:func:`build_index` rebuilds the index from the documents alone (the folder is the truth):
newest first, one entry per document with its identifier, sender, sent, status, msgType,
incidents, references, event, severity, urgency, area and file name. The worker serves the
folder over HTTP (``/cap/index.json``, ``/cap/<file>.xml``); nothing here knows Kafka.
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from alerting.cap import CAP_NS, DEFAULT_SENDER, CapRef, cap_wanted, render_cap
from alerting.model import ZoneInfo
from gyeongbo.events import AlertEvent

__all__ = ["CapFeed", "build_index", "file_name"]

INDEX = "index.json"


def file_name(identifier: str) -> str:
    """A safe file name for a CAP identifier.

    >>> file_name("flood:11030:2020-08-06T10:40:00+09:00#2")
    'flood_11030_2020-08-06T10_40_00_09_00_2.xml'
    """
    return re.sub(r"[^A-Za-z0-9._-]", "_", identifier) + ".xml"


def _text(el: ET.Element, tag: str) -> str | None:
    found = el.find(f"{{{CAP_NS}}}{tag}")
    return found.text if found is not None else None


def _entry(path: Path) -> dict[str, Any]:
    root = ET.parse(path).getroot()
    info = root.find(f"{{{CAP_NS}}}info")
    entry: dict[str, Any] = {
        k: _text(root, k)
        for k in ("identifier", "sender", "sent", "status", "msgType", "incidents", "references")
    }
    if info is not None:
        entry.update({k: _text(info, k) for k in ("event", "severity", "urgency", "certainty")})
        entry["responseType"] = _text(info, "responseType")
        area = info.find(f"{{{CAP_NS}}}area")
        entry["areaDesc"] = _text(area, "areaDesc") if area is not None else None
    entry["file"] = path.name
    return entry


def build_index(folder: Path | str) -> dict[str, Any]:
    """The JSON index of every CAP document in ``folder``, newest first."""
    folder = Path(folder)
    entries = [_entry(p) for p in sorted(folder.glob("*.xml"))]
    entries.sort(key=lambda e: (e["sent"] or "", e["identifier"] or ""), reverse=True)
    return {"version": 1, "format": "CAP 1.2", "namespace": CAP_NS, "entries": entries}


class CapFeed:
    def __init__(self, folder: Path | str, *, sender: str = DEFAULT_SENDER) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.sender = sender
        self._refs: dict[str, list[CapRef]] = {}
        for e in build_index(self.folder)["entries"][::-1]:
            if e["incidents"] and e["identifier"]:
                self._refs.setdefault(e["incidents"], []).append(
                    CapRef(e["sender"], e["identifier"], e["sent"])
                )

    def publish(self, event: AlertEvent, zone: ZoneInfo) -> Path | None:
        """Write the transition's CAP document and refresh the index; None if not public."""
        if not cap_wanted(event):
            return None
        path = self.folder / file_name(event.event_id)
        if path.exists():
            return path
        refs = self._refs.get(event.alert_id, [])
        xml = render_cap(event, zone, sender=self.sender, references=refs)
        _atomic_write(path, xml)
        sent = _text(ET.fromstring(xml), "sent") or ""
        self._refs.setdefault(event.alert_id, []).append(CapRef(self.sender, event.event_id, sent))
        self.write_index()
        return path

    def write_index(self) -> Path:
        path = self.folder / INDEX
        data = json.dumps(build_index(self.folder), ensure_ascii=False, indent=1).encode()
        _atomic_write(path, data)
        return path


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
