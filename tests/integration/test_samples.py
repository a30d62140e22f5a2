"""Every public sample in ../shared/data replays through the flow into Redis, and adds up."""

from __future__ import annotations

import random

import pytest

from rtp.client import Client
from rtp.config import Settings
from rtp.tools.evaluate import load_events
from rtp.tools.replay import replay
from tests.conftest import shared_sample

SAMPLES = [
    ("otto-fixture/train.jsonl", "otto", None),
    ("rees46-sample/2019-Oct-sample.csv", "rees46", None),
    ("diginetica-sample/sample_train-item-views.csv", "diginetica", None),
    ("taobao-userbehavior/UserBehavior_head10k.csv", "taobao", True),  # grouped by user: sort
]


@pytest.mark.slow
@pytest.mark.parametrize(("relpath", "fmt", "sort"), SAMPLES, ids=[s[1] for s in SAMPLES])
def test_sample_replays_and_every_user_has_context_profile_and_decisions(
    redis_url: str, relpath: str, fmt: str, sort: bool | None
) -> None:
    path = shared_sample(relpath)
    events = load_events([path], fmt, sort=sort)
    settings = Settings(redis_url=redis_url)
    report = replay([path], fmt, settings, progress=False, sort=sort)
    assert report["read"] == report["accepted"] + report["rejected"]
    assert report["accepted"] == len(events) and report["events"] == len(events)
    users = sorted({e.user for e in events})
    assert report["decisions"]["ranked"] > 0
    client = Client.from_url(redis_url)
    random.seed(3)
    for user in random.sample(users, min(25, len(users))):
        ctx = client.context(user)
        assert ctx is not None, user
        home = client.decision(user, "home")
        assert home is not None and home["reason"] and home["items"], user
        assert len(home["reasons"]) == len(home["items"])
        profile = client.profile(user)  # the end of the stream folds every open session
        assert profile is not None and profile["events"] >= 1, user
        last = max((e for e in events if e.user == user), key=lambda e: e.ts)
        assert home["ts"] == last.ts  # the decision reflects the user's last event
