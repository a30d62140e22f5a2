"""rtp.tools.synth: a seeded, time-ordered, schema-valid and realistic synthetic clickstream."""

from __future__ import annotations

import hashlib
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import iptocc
import orjson
import pytest

from rtp.capture import events as ev
from rtp.capture.enrich import Enricher
from rtp.tools.synth import (
    CONSIDERED,
    COUNTRIES,
    COUNTRY_FAVOURITES,
    DEFAULT_START_TS,
    IMPULSE,
    LEISURE,
    NEWS_TOPICS,
    SITE_HOST,
    bad_lines,
    casual_score,
    generate,
    generate_news_records,
    generate_records,
    main,
    write_jsonl,
)


@pytest.fixture(scope="module")
def stream() -> list[ev.Event]:
    return list(generate(400, seed=11))


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    a = [orjson.dumps(r) for r in generate_records(60, seed=5)]
    b = [orjson.dumps(r) for r in generate_records(60, seed=5)]
    c = [orjson.dumps(r) for r in generate_records(60, seed=6)]
    assert a == b
    assert a != c


def test_events_match_records() -> None:
    records = list(generate_records(30, seed=2))
    events = list(generate(30, seed=2))
    assert [e.to_dict() for e in events] == records


def test_time_order_and_span(stream: list[ev.Event]) -> None:
    ts = [e.ts for e in stream]
    assert ts == sorted(ts)
    assert ts[0] >= DEFAULT_START_TS and ts[-1] < DEFAULT_START_TS + 9 * 86_400


def test_counts_and_types(stream: list[ev.Event]) -> None:
    users = {e.user for e in stream}
    assert 380 <= len(users) <= 400
    assert 12 <= len(stream) / len(users) <= 30  # ~20 events per user
    types = Counter(e.type for e in stream)
    for t in (ev.PRODUCT_VIEW, ev.PAGE_VIEW, ev.SEARCH, ev.ADD_TO_CART, ev.REMOVE_FROM_CART,
              ev.PURCHASE, ev.HELP_VIEW, ev.DO_NOT_PERSONALIZE):  # fmt: skip
        assert types[t] > 0, t
    assert set(types) <= ev.EVENT_TYPES
    assert types[ev.PRODUCT_VIEW] > types[ev.ADD_TO_CART] > types[ev.PURCHASE]
    assert all(e.price is not None and e.price > 0 for e in stream if e.type == ev.PURCHASE)
    assert all(e.dwell is not None and e.dwell > 0 for e in stream if e.type == ev.HELP_VIEW)
    assert any(e.back for e in stream)


def test_every_line_is_schema_valid(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    records = list(generate_records(200, seed=3))
    assert write_jsonl(records, path) == len(records)
    lines = path.read_bytes().splitlines()
    assert len(lines) == len(records)
    for n, line in enumerate(lines):
        e = ev.parse_json(line, f"s.jsonl:{n + 1}")
        assert isinstance(e, ev.Event), e
        assert e.to_dict() == records[n]


def test_write_jsonl_takes_events(tmp_path: Path) -> None:
    events = list(generate(20, seed=4))
    path = tmp_path / "e.jsonl"
    assert write_jsonl(events, path) == len(events)
    back = [ev.parse_json(line, "x") for line in path.read_bytes().splitlines()]
    assert [e.to_dict() for e in back if isinstance(e, ev.Event)] == [e.to_dict() for e in events]


def test_behaviour_is_realistic(stream: list[ev.Event]) -> None:
    by_session: dict[str | None, list[ev.Event]] = defaultdict(list)
    for e in stream:
        by_session[e.session].append(e)
    # category locality: consecutive product views of a visit mostly stay in one category
    same = pairs = 0
    for es in by_session.values():
        views = [e for e in es if e.type == ev.PRODUCT_VIEW]
        for a, b in zip(views, views[1:], strict=False):
            pairs += 1
            same += a.category == b.category
    assert same / pairs > 0.5
    # popular-item skew: the top 1% of items take a large share of views
    item_views = Counter(e.item for e in stream if e.type == ev.PRODUCT_VIEW)
    top = sum(n for _, n in item_views.most_common(max(1, len(item_views) // 100)))
    assert top / sum(item_views.values()) > 0.08
    # frustration: a visit with the same search three times or more
    assert any(
        max(Counter(e.query for e in es if e.type == ev.SEARCH).values(), default=0) >= 3
        for es in by_session.values()
    )
    # abandoned carts across visits: carted in one visit, bought in a later one
    carted: dict[tuple[str, str | None], str | None] = {}
    later = 0
    for e in stream:
        if e.type == ev.ADD_TO_CART:
            carted.setdefault((e.user, e.item), e.session)
        elif e.type == ev.PURCHASE and carted.get((e.user, e.item), e.session) != e.session:
            later += 1
    assert later > 0
    # every user's price level shows: spread of purchase prices is wide
    prices = sorted(e.price for e in stream if e.type == ev.PURCHASE and e.price is not None)
    assert prices[-1] > 10 * prices[0]


def test_context_covers_devices_countries_and_referrals(stream: list[ev.Event]) -> None:
    enricher = Enricher(site_hosts=(SITE_HOST,))
    firsts = [e for e in stream if e.ua is not None]
    assert firsts and all(e.ip is not None for e in firsts)
    ips = {e.ip for e in firsts}
    enricher.enrich_all(firsts)
    assert {e.device for e in firsts} == {"desktop", "mobile", "tablet"}
    assert {e.referral for e in firsts} == {"search", "social", "email", "paid", "direct",
                                            "internal"}  # fmt: skip
    assert len({e.country for e in firsts}) >= 8
    assert all(e.ip is None for e in firsts)  # enrichment drops the raw IP
    # the IP table is honest: every address is in the country it is listed under
    for cc, _, _, addresses in COUNTRIES:
        for ip in addresses:
            assert iptocc.country_code(ip) == cc, ip
    assert ips <= {ip for c in COUNTRIES for ip in c[3]}


def test_without_context() -> None:
    assert all(e.ua is None and e.ip is None and e.referrer is None
               for e in generate(30, seed=1, with_context=False))  # fmt: skip


def test_bad_lines_are_rejected_with_their_reason() -> None:
    ts = DEFAULT_START_TS + 86_400
    bad = list(bad_lines(ts))
    assert {reason for reason, _ in bad} >= {
        ev.INVALID_JSON, ev.UNKNOWN_TYPE, ev.MISSING_FIELD, ev.INVALID_PRICE, ev.OVERSIZED,
        ev.TIMESTAMP_OUT_OF_RANGE,
    }  # fmt: skip
    clock = ev.StreamClock()
    assert clock.check(ts) is None  # the stream so far
    for reason, raw in bad:
        got = ev.parse_json(raw, "bad")
        if isinstance(got, ev.Event):  # only the source's clock can tell
            assert reason == ev.TIMESTAMP_OUT_OF_RANGE
            assert clock.check(got.ts) is not None
        else:
            assert got.reason == reason, (raw[:80], got)


def test_cli_writes_the_stream(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.jsonl"
    assert main(["--users", "40", "--out", str(out), "--seed", "9", "--bad-lines"]) == 0
    lines = out.read_bytes().splitlines()
    n_bad = len(list(bad_lines()))
    assert [orjson.loads(x) for x in lines[:-n_bad]] == list(generate_records(40, seed=9))
    assert "events of 40 users" in capsys.readouterr().err


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        list(generate_records(10, sessions_per_user=0.5))


# --- context effects ----------------------------------------------------------------------------


def test_without_context_effect_the_stream_is_the_one_made_before_it_existed() -> None:
    """``context_effect=0`` draws nothing from the effect's own random stream: the bytes of the
    stream made before the effect existed (its hash, taken with that version)."""
    data = b"".join(orjson.dumps(r) + b"\n" for r in generate_records(80, seed=5, context_effect=0))
    assert hashlib.sha256(data).hexdigest() == (
        "7caf6242acd044fe9bb4a249c8c38abc2ee632e480f68bbc7ccfa502a870bc7d"
    )
    assert list(generate_records(80, seed=5)) != list(
        generate_records(80, seed=5, context_effect=0)
    )
    with pytest.raises(ValueError):
        list(generate_records(5, context_effect=-1))


def _views_by_context(effect: float) -> list[tuple[tuple[str, int, int, str, str], str, float]]:
    """(device, hour, weekday, referral, country) of the visit, category and price per view."""
    events = list(generate(1_500, seed=1, context_effect=effect))
    Enricher(site_hosts=(SITE_HOST,)).enrich_all(events)
    ctx: dict[str | None, tuple[str, int, int, str, str]] = {}
    out = []
    for e in events:
        if e.session not in ctx and e.device is not None:
            assert e.referral is not None and e.country is not None
            ctx[e.session] = (e.device, e.hour, e.weekday, e.referral, e.country)
        if e.type == ev.PRODUCT_VIEW and e.session in ctx:
            assert e.category is not None and e.price is not None
            out.append((ctx[e.session], e.category, e.price))
    return out


@pytest.fixture(scope="module")
def context_views() -> dict[float, list[tuple[tuple[str, int, int, str, str], str, float]]]:
    return {effect: _views_by_context(effect) for effect in (0.0, 1.0)}


def _share(views: list[tuple[tuple[str, int, int, str, str], str, float]], group: object) -> float:
    assert views
    return sum(c in group for _, c, _ in views) / len(views)  # type: ignore[operator]


def test_casual_visits_favour_cheap_impulse_categories(
    context_views: dict[float, list[tuple[tuple[str, int, int, str, str], str, float]]],
) -> None:
    views = context_views[1.0]
    casual = [v for v in views if casual_score(*v[0][:4]) == 3]  # phone, evening, social
    formal = [v for v in views if casual_score(*v[0][:4]) == -3]  # desktop, office, search
    assert len(casual) > 300 and len(formal) > 300
    assert _share(casual, IMPULSE) > _share(formal, IMPULSE) + 0.3
    assert _share(formal, CONSIDERED) > _share(casual, CONSIDERED) + 0.3
    assert statistics.median(p for *_, p in formal) > 2.5 * statistics.median(p for *_, p in casual)
    # without the effect the same segments look alike
    plain = context_views[0.0]
    casual0 = [v for v in plain if casual_score(*v[0][:4]) >= 2]
    formal0 = [v for v in plain if casual_score(*v[0][:4]) <= -2]
    assert abs(_share(casual0, IMPULSE) - _share(formal0, IMPULSE)) < 0.1


def test_weekends_and_countries_have_their_categories(
    context_views: dict[float, list[tuple[tuple[str, int, int, str, str], str, float]]],
) -> None:
    for effect, weekend_ratio in ((1.0, (2.0, 4.0)), (0.0, (0.7, 1.4))):
        views = context_views[effect]
        weekend = _share([v for v in views if v[0][2] >= 5], LEISURE)
        weekday = _share([v for v in views if v[0][2] < 5], LEISURE)
        assert weekend_ratio[0] < weekend / weekday < weekend_ratio[1], (effect, weekend, weekday)
    views = context_views[1.0]
    for cc in ("US", "GB", "DE", "FR", "JP"):
        favourites = COUNTRY_FAVOURITES[cc]
        own = _share([v for v in views if v[0][4] == cc], favourites)
        others = _share([v for v in views if v[0][4] != cc], favourites)
        assert own > 2 * others, (cc, own, others)


def test_mobile_evening_visits_come_from_social_media_more_often() -> None:
    events = [e for e in generate(1_500, seed=2) if e.ua is not None]
    Enricher(site_hosts=(SITE_HOST,)).enrich_all(events)
    evening = [e.referral for e in events if e.device != "desktop" and e.hour >= 18]
    office = [
        e.referral for e in events if e.device == "desktop" and e.weekday < 5 and 9 <= e.hour < 17
    ]
    assert evening.count("social") / len(evening) > 0.35  # 14 % without the effect
    assert office.count("search") / len(office) > 0.45  # 30 % without the effect


def test_country_field_names_the_country_of_the_ip() -> None:
    records = [r for r in generate_records(60, seed=3, country_field=True) if "context" in r]
    assert records
    for r in records:
        assert iptocc.country_code(r["context"]["ip"]) == r["context"]["country"]
    assert all("country" not in r.get("context", {}) for r in generate_records(20, seed=3))


# --- news ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def news() -> list[dict[str, Any]]:
    return list(generate_news_records(800, seed=4))


def test_news_is_seeded_ordered_and_schema_valid(news: list[dict[str, Any]]) -> None:
    assert news == list(generate_news_records(800, seed=4))
    assert news != list(generate_news_records(800, seed=5))
    ts = [r["ts"] for r in news]
    assert ts == sorted(ts)
    assert ts[0] >= DEFAULT_START_TS and ts[-1] < DEFAULT_START_TS + 5 * 86_400
    assert 15 < len(news) / len({r["user"] for r in news}) < 35
    for n, r in enumerate(news):
        e = ev.parse_json(orjson.dumps(r), f"news.jsonl:{n + 1}")
        assert isinstance(e, ev.Event), e
    assert {r["type"] for r in news} == {ev.PRODUCT_VIEW, ev.PAGE_VIEW, ev.DO_NOT_PERSONALIZE}


def test_news_reads_carry_topics_and_publish_time(news: list[dict[str, Any]]) -> None:
    reads = [r for r in news if r["type"] == ev.PRODUCT_VIEW]
    published: dict[str, int] = {}
    for r in reads:
        assert r["item"].startswith("a")
        topics = r["topics"]
        assert topics and r["category"] == topics[0] and len(set(topics)) == len(topics) <= 3
        assert set(topics) <= set(NEWS_TOPICS)
        assert isinstance(r["published"], int) and r["published"] <= r["ts"]
        assert published.setdefault(r["item"], r["published"]) == r["published"]
        assert r["dwell"] > 0
    assert any(len(r["topics"]) > 1 for r in reads)


def test_news_goes_stale_within_hours(news: list[dict[str, Any]]) -> None:
    ages = [(r["ts"] - r["published"]) / 3_600 for r in news if r["type"] == ev.PRODUCT_VIEW]
    assert 3 < statistics.median(ages) < 10
    assert sum(a < 24 for a in ages) / len(ages) > 0.85
    slow = [r for r in generate_news_records(300, seed=4, half_life_h=24.0) if "published" in r]
    assert statistics.median((r["ts"] - r["published"]) / 3_600 for r in slow) > 12


def test_news_sessions_interests_and_important_stories(news: list[dict[str, Any]]) -> None:
    reads = [r for r in news if r["type"] == ev.PRODUCT_VIEW]
    per_visit = Counter(r["session"] for r in reads)
    visits = {r["session"] for r in news if "session" in r}
    assert 3 < len(reads) / len(visits) < 5  # several reads a visit
    assert max(per_visit.values()) >= 8
    # interests: a reader's two most read topics take more of their reads than overall
    by_reader: dict[str, list[str]] = defaultdict(list)
    for r in reads:
        by_reader[r["user"]].append(r["category"])
    overall = Counter(r["category"] for r in reads)
    top2 = sum(n for _, n in overall.most_common(2)) / len(reads)
    own = [
        sum(n for _, n in Counter(cs).most_common(2)) / len(cs)
        for cs in by_reader.values()
        if len(cs) >= 10
    ]
    assert statistics.mean(own) > top2 + 0.1
    # important stories: a few articles read by far more readers, across interests
    readers: dict[str, set[str]] = defaultdict(set)
    for r in reads:
        readers[r["item"]].add(r["user"])
    counts = sorted((len(v) for v in readers.values()), reverse=True)
    assert counts[0] > 5 * statistics.median(counts)


def test_cli_writes_news(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "news.jsonl"
    assert main(["--users", "30", "--out", str(out), "--seed", "2", "--kind", "news"]) == 0
    got = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert got == list(generate_news_records(30, seed=2))
    assert "news events of 30 users" in capsys.readouterr().err
    shop = tmp_path / "shop.jsonl"
    assert main(["--users", "30", "--out", str(shop), "--context-effect", "0"]) == 0
    assert [orjson.loads(x) for x in shop.read_bytes().splitlines()] == list(
        generate_records(30, context_effect=0)
    )
