"""Segment calls to schema-v1 events (pure mapping; the HTTP tests post every name)."""

from __future__ import annotations

import pytest

from rtp.capture.events import Event, from_dict
from rtp.http.segment import TRACK_EVENTS, Unmapped, is_segment, to_events


def test_is_segment() -> None:
    assert is_segment({"type": "track"}) and is_segment({"type": "identify"})
    assert not is_segment({"type": "page_view"}) and not is_segment({"type": 3})


def test_names_are_case_and_space_insensitive() -> None:
    call = {"type": "track", "event": "  product   VIEWED ", "userId": "u", "timestamp": 1.7e9,
            "properties": {"sku": "s1", "price": "12.5"}}  # fmt: skip
    [event] = to_events(call, 0.0)
    assert event["type"] == "product_view" and event["item"] == "s1" and event["price"] == 12.5
    assert isinstance(from_dict(event, ""), Event)


def test_unknown_and_missing() -> None:
    with pytest.raises(Unmapped) as e:
        to_events({"type": "track", "event": "Signed Up", "userId": "u"}, 0.0)
    assert e.value.reason == "unknown_type"
    with pytest.raises(Unmapped) as e:
        to_events({"type": "track", "event": "Order Completed", "userId": "u"}, 0.0)
    assert e.value.reason == "missing_field"
    assert to_events({"type": "identify", "userId": "u"}, 0.0) == []
    assert to_events({"type": "alias", "userId": "u", "previousId": "a"}, 0.0) == []


def test_order_without_products_list_but_with_an_item() -> None:
    call = {"type": "track", "event": "Order Completed", "anonymousId": "a",
            "properties": {"product_id": "p9", "price": 10}}  # fmt: skip
    [event] = to_events(call, 123.0)
    assert event == {
        "v": 1,
        "type": "purchase",
        "anon": "a",
        "ts": 123.0,
        "item": "p9",
        "price": 10,
    }


def test_every_name_has_a_valid_event_type() -> None:
    from rtp.capture.events import BEHAVIOUR_TYPES

    assert set(TRACK_EVENTS.values()) <= BEHAVIOUR_TYPES


def test_help_pages() -> None:
    for page in (
        {"name": "FAQ"},
        {"category": "Support"},
        {"properties": {"path": "/help/returns"}},
    ):
        [event] = to_events({"type": "page", "userId": "u", **page}, 0.0)
        assert event["type"] == "help_view"
    [event] = to_events({"type": "page", "userId": "u", "name": "Home"}, 0.0)
    assert event["type"] == "page_view"
