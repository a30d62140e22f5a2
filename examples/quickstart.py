"""rtp in a minute: replay a few events into Redis, then read a decision the way an app does.

    python examples/quickstart.py                          # a private redis-server
    python examples/quickstart.py redis://localhost:6379/0

The code between the ``quickstart`` markers is the README's quick start, word for word
(``tests/integration/test_readme.py`` runs this file and checks that they match).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any


def quickstart(url: str) -> dict[str, Any] | None:
    # --8<-- [start:quickstart]
    import orjson

    from rtp.client import Client
    from rtp.config import Settings
    from rtp.tools.replay import replay

    t = 1_730_700_000  # event time (unix seconds)
    events = [  # schema v1 (rtp.capture.events): bob and carol browse shoes, then alice arrives
        {"type": "product_view", "user": "bob", "ts": t, "item": "sneaker-1",
         "category": "shoes", "price": 59.9},
        {"type": "product_view", "user": "bob", "ts": t + 20, "item": "sneaker-2",
         "category": "shoes", "price": 64.0},
        {"type": "product_view", "user": "carol", "ts": t + 30, "item": "sneaker-1",
         "category": "shoes", "price": 59.9},
        {"type": "product_view", "user": "carol", "ts": t + 45, "item": "boot-7",
         "category": "shoes", "price": 89.0},
        {"type": "add_to_cart", "user": "carol", "ts": t + 60, "item": "boot-7",
         "category": "shoes", "price": 89.0},
        {"type": "product_view", "user": "alice", "ts": t + 90, "item": "sneaker-1",
         "category": "shoes", "price": 59.9,
         "context": {"ua": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)",
                     "referrer": "https://www.google.com/"}},
    ]  # fmt: skip
    path = Path(tempfile.mkdtemp()) / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"v": 1, **e}) + b"\n" for e in events))

    report = replay([path], "jsonl", Settings(redis_url=url), progress=False)
    print(f"replayed {report['accepted']} events, rejected {report['rejected']}")

    with Client.from_url(url) as client:
        home = client.decision("alice", "home")
    assert home is not None
    print("alice, home:", [item for item, _score in home["items"]][:5])
    print("reason:", home["reason"])
    # --8<-- [end:quickstart]
    return home


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        quickstart(argv[1])
        return 0
    from rtp.store.server import EmbeddedRedis

    with EmbeddedRedis() as server:
        quickstart(server.url)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
