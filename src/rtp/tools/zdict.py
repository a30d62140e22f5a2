"""Train the zstd dictionary of the decision form (``rtp.store.codec``, kind 0xD2).

    python -m rtp.tools.zdict --out src/rtp/store/decision-3.zdict
    python -m rtp.tools.zdict --form fast --out src/rtp/store/decision-2.zdict

The samples are the decisions the engine writes over seeded synthetic streams (a shop with and
without context, a news site): what a decision's JSON looks like, its keys, reason sentences,
hero themes and context values, not any shop's data. A dictionary, once used to write values,
never changes: a new one gets the next number (``decision-{n}.zdict`` beside the codec, and
``_Z_DICT`` in the codec names the one new values are written with); every shipped number stays
readable. ``--form fast`` trains on the payloads of the fast form (the JSON as it is,
``rtp.store.codec.fast_payload``) instead of the zstd form's pre-passed ones.
"""

from __future__ import annotations

import argparse
import copy
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import zstandard as zstd

from rtp.capture.events import Event
from rtp.config import DECISION_FORMS, Settings
from rtp.engine import Engine
from rtp.store.codec import _z_payload, decode_decision, fast_payload
from rtp.tools.synth import _event, generate, generate_news_records

DICT_BYTES = 8_192


def _decisions(events: Iterable[Event], per_tick: int = 500) -> list[bytes]:
    eng = Engine(Settings())
    raws: list[bytes] = []
    tick: list[Event] = []
    for e in events:
        tick.append(e)
        if len(tick) >= per_tick:
            raws.extend(raw for _, raw in eng.process(tick).decisions)
            tick = []
    if tick:
        raws.extend(raw for _, raw in eng.process(tick).decisions)
    return raws


def _numeric(x: Any) -> Any:
    """``x`` with every id and category name a 7-digit number (as many shops number them)."""
    if isinstance(x, str):
        return str(1_000_000 + zlib.crc32(x.encode()) % 4_000_000) if x else x
    if isinstance(x, list):
        return [_numeric(v) if isinstance(v, str) else v for v in x]
    return x


def numeric_ids(doc: dict[str, Any]) -> dict[str, Any]:
    """The same decision for a shop whose item and category ids are numbers, with integer
    times and sessions named by their start (what a tracker without session ids gives)."""
    d = copy.deepcopy(doc)
    home = d.get("home")
    if isinstance(home, dict) and isinstance(home.get("items"), list):
        home["items"] = _numeric(home["items"])
    ctx = d.get("ctx")
    if isinstance(ctx, dict):
        if isinstance(d.get("ts"), float):
            d["ts"] = int(d["ts"])
        if isinstance(ctx.get("started"), float):
            ctx["started"] = int(ctx["started"])
            ctx["session"] = str(ctx["started"])
        if isinstance(ctx.get("recent"), list):
            ctx["recent"] = _numeric(ctx["recent"])
        cats = ctx.get("categories")
        if isinstance(cats, list):
            ctx["categories"] = [[_numeric(c[0]), c[1]] for c in cats if isinstance(c, list)]
        for key in ("hero",):
            h = d.get(key)
            if isinstance(h, dict) and cats:
                top = ctx["categories"][0][0]
                theme = str(h.get("theme", ""))
                h["theme"] = theme.split(":")[0] + ":" + top
    return d


def samples(users: int = 2_000, seed: int = 1, form: str = "compact") -> list[bytes]:
    """The payloads (what zstd compresses) of the decisions over the synthetic streams, each
    also with numeric ids (:func:`numeric_ids`), in the zstd form or (``form="fast"``) the
    fast form."""
    payload = fast_payload if form == "fast" else _z_payload
    raws = _decisions(generate(users, seed=seed))
    raws += _decisions(generate(users // 2, seed=seed + 1, with_context=False))
    raws += _decisions(map(_event, generate_news_records(users // 2, seed=seed + 2)))
    out = []
    for raw in raws:
        doc = decode_decision(raw)
        for d in (doc, numeric_ids(doc)):
            p = payload(d)
            if p is not None:
                out.append(p)
    return out


def train(payloads: Sequence[bytes], size: int = DICT_BYTES) -> bytes:
    return zstd.train_dictionary(size, list(payloads), level=3).as_bytes()


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m rtp.tools.zdict", description=__doc__.split("\n")[0]
    )
    p.add_argument("--out", required=True, help="the dictionary file to write")
    p.add_argument("--users", type=int, default=2_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--bytes", type=int, default=DICT_BYTES)
    p.add_argument("--form", choices=DECISION_FORMS, default="compact")
    a = p.parse_args(argv)
    payloads = samples(a.users, a.seed, a.form)
    data = train(payloads, a.bytes)
    with open(a.out, "wb") as f:
        f.write(data)
    print(f"{a.out}: {len(data):,} bytes from {len(payloads):,} decisions")


if __name__ == "__main__":
    main()
