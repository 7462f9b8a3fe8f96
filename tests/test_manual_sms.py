"""An operator's decision reaches residents as one: the SMS says it was decided by hand and
by which body, never a station and an empty value."""

from __future__ import annotations

import msgspec
import pytest
import yaml

from alerting.templates import TemplateError, parse_templates
from gyeongbo.events import AlertEvent
from streams.config_files import DEFAULT_TEMPLATES, load_templates

T = load_templates()
MANUAL = AlertEvent(
    alert_id="flood:11030",
    hazard="flood",
    zone="11030",
    zone_name="용산구",
    level="alert",
    previous="cleared",
    level_ko="경계",
    ts="2026-08-06T10:00:00+09:00",
    action="manual",
    actor="op-lee",
    reason="levee seepage",
)


def test_a_manual_escalation_says_manual_and_who_decided() -> None:
    assert (
        T.render(MANUAL)
        == "[경보] Flood 홍수경보 용산구: 재난안전상황실 수동 발령. 안내에 따라 행동하세요."
    )


def test_a_manual_clear_says_so_and_a_detected_clear_keeps_its_station_text() -> None:
    clear = msgspec.structs.replace(MANUAL, level="cleared", previous="alert", action="clear")
    assert (
        T.render(clear)
        == "[해제] Flood 홍수특보 해제 용산구: 재난안전상황실 수동 해제. -재난안전상황실"
    )
    auto = msgspec.structs.replace(
        clear, actor=None, reason=None, stations=["1018683"], evidence={"value": 4.1}
    )
    assert T.render(auto, station_names={"1018683": "한강대교"}) == (
        "[해제] Flood 홍수특보 해제 용산구: 한강대교 수위 4.1m. 안전 확인 후 귀가. -한강홍수통제소"
    )


@pytest.mark.parametrize("hazard", sorted(T.hazards))
@pytest.mark.parametrize("level", ["caution", "alert", "serious"])
def test_every_manual_text_is_whole_and_fits_with_the_drill_prefix(hazard: str, level: str) -> None:
    ev = msgspec.structs.replace(
        MANUAL, hazard=hazard, level=level, zone_name="서울특별시용산구청", exercise=True
    )
    text = T.render(ev)
    assert text is not None and text.startswith("[훈련][경보]")
    assert "수동 발령" in text and "재난안전상황실" in text and "  " not in text
    assert len(text) <= T.max_chars


def test_a_manual_text_without_the_body_is_refused() -> None:
    data = yaml.safe_load(DEFAULT_TEMPLATES.read_text(encoding="utf-8"))
    data["manual"]["text"] = "{prefix} {keyword} {title} {zone}: 수동 발령."
    with pytest.raises(TemplateError, match=r"manual\.text"):
        parse_templates(data)
    del data["manual"]["titles"]["ozone"]
    data["manual"]["text"] = "{prefix} {keyword} {title} {zone}: {body}"
    with pytest.raises(TemplateError, match=r"manual\.titles\.ozone\.caution"):
        parse_templates(data)
