"""The demo (``make demo``) against a real redis-server: it follows three users through four
replays into one Redis and leaves decisions with reasons there."""

from __future__ import annotations

import time

from rtp.client import Client
from rtp.tools.demo import run
from rtp.tools.synth import bad_lines


def test_demo_replays_four_parts_and_explains_three_users(redis_url: str) -> None:
    lines: list[str] = []
    t0 = time.perf_counter()
    result = run(users=600, seed=7, redis_url=redis_url, out=lines.append)
    seconds = time.perf_counter() - t0
    text = "\n".join(lines)

    picks = result["picks"]
    assert [p.role for p in picks] == ["loyal", "abandoner", "frustrated"]
    assert len({p.user for p in picks}) == 3
    for p in picks:
        assert f"{p.user}: {p.title}" in text
    for title in ("a returning loyal buyer", "a user with an abandoned cart",
                  "a frustrated searcher"):  # fmt: skip
        assert title in text
    for label in ("context", "profile", "home", "hero", "offer", "assist", "dead letters"):
        assert label in text, label

    reports = result["reports"]
    assert len(reports) == 4
    for r in reports:
        assert r["read"] == r["accepted"] + r["rejected"]
        assert r["decisions"]["ranked"] > 0
    assert reports[0]["rejected"] == len(list(bad_lines()))
    assert sum(r["rejected"] for r in reports[1:]) == 0

    with Client.from_url(redis_url) as client:
        for p in picks[:2]:
            home = client.decision(p.user, "home")
            assert home is not None and home["items"] and home["reason"]
            assert len(home["why"]) == len(home["items"])  # a reason per item
            assert client.profile(p.user) is not None  # read back and extended by each part
        assert client.decision(picks[2].user, "home") is None  # the demo forgot this one
        assert client.profile(picks[2].user) is None
        assert client.stats()["dead_letters"] == len(list(bad_lines()))
    assert seconds < 20, f"the demo took {seconds:.1f} s"
