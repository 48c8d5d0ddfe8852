"""Which dead letters a redrive sends back, and as what (the pure plan; no Kafka)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
import pytest

from remarket.redrive import REDRIVEN_FROM, DeadLetter, Selection, decide, parse_time, plan

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
TOPICS = {"shop.orders", "shop.visits", "remarket.dead-letter"}


def letter(offset: int = 7, *, reason: str = "schema_violation", topic: str = "shop.orders",
           event_id: str | None = "e-1", at: datetime = NOW, extra: tuple = (), value: bytes | None = None
           ) -> DeadLetter:
    body = value if value is not None else orjson.dumps({"event_id": event_id, "event_type": "order.paid"})
    headers = (("traceparent", b"00-abc-def-01"), ("content-type", b"application/json"),
               ("remarket-dlq-reason", reason.encode()), ("remarket-dlq-detail", b"amount: required"),
               ("remarket-dlq-topic", topic.encode()), ("remarket-dlq-partition", b"1"),
               ("remarket-dlq-offset", b"42"), ("remarket-dlq-failed-at", at.isoformat().encode()), *extra)
    return DeadLetter("remarket.dead-letter", 0, offset, int(at.timestamp() * 1000), b"c-1", body, headers)


def test_a_redrive_is_the_original_bytes_key_and_producer_headers_to_the_source_topic():
    dead = letter()
    decision = decide(dead, Selection(), set(), TOPICS)
    assert decision.outcome == "would_redrive"
    r = decision.redrive
    assert (r.topic, r.key, r.value) == ("shop.orders", b"c-1", dead.value)
    assert r.headers == [("traceparent", b"00-abc-def-01"), ("content-type", b"application/json"),
                         (REDRIVEN_FROM, b"remarket.dead-letter/0/7")]


def test_an_earlier_redriven_from_header_is_replaced_not_repeated():
    dead = letter(extra=((REDRIVEN_FROM, b"remarket.dead-letter/0/1"),), event_id="e-2")
    headers = decide(dead, Selection(), set(), TOPICS).redrive.headers
    assert [v for k, v in headers if k == REDRIVEN_FROM] == [b"remarket.dead-letter/0/7"]


def test_an_event_redriven_before_is_skipped_and_so_is_a_second_copy_in_the_same_run():
    first, copy = letter(7), letter(8)
    assert decide(first, Selection(), {"event:e-1"}, TOPICS).outcome == "already_redriven"
    result = plan([first, copy], Selection(), set(), TOPICS)
    assert [d.outcome for d in result.decisions] == ["would_redrive", "already_redriven"]


def test_a_record_without_event_id_is_keyed_by_its_dead_letter_coordinates():
    dead = letter(value=b"{not json")
    assert dead.marker_key == "dead-letter:remarket.dead-letter/0/7"
    assert decide(dead, Selection(), {dead.marker_key}, TOPICS).outcome == "already_redriven"
    assert decide(letter(8, value=b"{not json"), Selection(), {dead.marker_key}, TOPICS).outcome == "would_redrive"


def test_truncated_records_cannot_be_redriven():
    dead = letter(extra=(("remarket-dlq-truncated", b"true"), ("remarket-dlq-original-size", b"900000")))
    assert decide(dead, Selection(), set(), TOPICS).outcome == "truncated"


def test_a_source_topic_that_is_gone_or_unnamed_is_unroutable():
    assert decide(letter(topic="shop.deleted"), Selection(), set(), TOPICS).outcome == "unroutable"
    nameless = DeadLetter("remarket.dead-letter", 0, 1, 0, b"c", b"{}", (("remarket-dlq-reason", b"not_json"),))
    assert decide(nameless, Selection(), set(), TOPICS).outcome == "unroutable"


def test_selection_by_reason_topic_and_time():
    picked = Selection(frozenset({"schema_violation"}), frozenset({"shop.orders"}), NOW - timedelta(hours=1), NOW)
    assert picked.matches(letter(at=NOW - timedelta(minutes=5)))
    assert not picked.matches(letter(reason="not_json", at=NOW - timedelta(minutes=5)))
    assert not picked.matches(letter(topic="shop.visits", at=NOW - timedelta(minutes=5)))
    assert not picked.matches(letter(at=NOW - timedelta(hours=2)))
    assert not picked.matches(letter(at=NOW))  # until is exclusive
    assert decide(letter(reason="not_json"), picked, set(), TOPICS).outcome == "not_selected"


def test_counts_cover_every_outcome():
    result = plan([letter(1), letter(2), letter(3, reason="not_json", event_id="e-3")],
                  Selection(frozenset({"schema_violation"})), set(), TOPICS)
    counts = result.counts()
    assert counts["would_redrive"] == 1 and counts["already_redriven"] == 1 and counts["not_selected"] == 1
    assert sum(counts.values()) == 3


def test_times_are_iso_with_an_offset_or_an_age():
    assert parse_time("2h", NOW) == NOW - timedelta(hours=2)
    assert parse_time("7d", NOW) == NOW - timedelta(days=7)
    assert parse_time("2026-11-01T00:00:00+00:00", NOW) == datetime(2026, 11, 1, tzinfo=timezone.utc)
    for bad in ("2026-11-01T00:00:00", "yesterday"):
        with pytest.raises(ValueError, match="UTC offset"):
            parse_time(bad, NOW)
