"""The decision's stored forms side by side: the first compact form (0xD1, pure Python), the
zstd form rtp writes (0xD2, ``rtp.store.codec``), its fast form
(``RTP_DECISION_FORM=fast``) and plain orjson + zstd with a dictionary
trained on these very decisions (process CPU time per value, bytes per value).

    .venv/bin/python -m benchmarks.codec_zstd          # Taobao
    .venv/bin/python -m benchmarks.codec_zstd synth    # the 10x synthetic stream, sizes only

The decisions are those the engine writes over the Taobao slice (no Redis): the first 4,000
train the plain form's dictionary, the next 4,000 are timed; the zstd form's pre-pass (what it
does before zstd) is timed alone too, and so are its scores (``_z_scores``). ``synth``: the last
decision per user over the first 150,000 events of ``rtp.tools.synth --users 50000 --seed 7``,
the bytes of both forms. The plain form's dictionary is trained on the data it is measured on
(an upper bound for it); rtp's ships with the package and was trained on synthetic streams
(``python -m rtp.tools.zdict``).
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import zstandard as zs

from benchmarks.engine_harness import TAOBAO, taobao_ticks
from rtp.config import Settings
from rtp.engine import Engine
from rtp.store.codec import (
    _z_payload,
    _z_scores,
    decode_decision,
    encode_decision,
    encode_decision_fast,
    encode_decision_v1,
)
from rtp.tools.synth import generate


def per_value_us(fn: Callable[[Any], Any], values: Sequence[Any]) -> float:
    best = float("inf")
    for _ in range(3):
        t = time.process_time()
        for v in values:
            fn(v)
        best = min(best, time.process_time() - t)
    return best / len(values) * 1e6


def _row(name: str, enc: Callable[[Any], bytes], dec: Callable[[bytes], Any], docs: Any) -> None:
    raws = [enc(d) for d in docs]
    print(f"{name}: encode {per_value_us(enc, docs):.1f} us, decode {per_value_us(dec, raws):.1f} "
          f"us, {sum(map(len, raws)) / len(raws):.1f} B")  # fmt: skip


def synth_sizes(events: int = 150_000) -> None:
    eng = Engine(Settings())
    last: dict[str, bytes] = {}
    tick: list[Any] = []
    for e in itertools.islice(generate(50_000, seed=7), events):
        tick.append(e)
        if len(tick) >= 500:
            last.update(eng.process(tick).decisions)
            tick = []
    docs = [decode_decision(r) for r in last.values()]
    for name, enc in (
        ("first compact form", encode_decision_v1),
        ("zstd form", encode_decision),
        ("fast form", encode_decision_fast),
    ):
        print(f"synthetic, last decision of {len(docs):,} users: {name} "
              f"{sum(len(enc(d)) for d in docs) / len(docs):.1f} B")  # fmt: skip


def main() -> None:
    if sys.argv[1:2] == ["synth"]:
        synth_sizes()
        return
    if not TAOBAO.exists():
        sys.exit(f"skipped: {TAOBAO} is absent")
    s = Settings()
    ticks = taobao_ticks(s)
    eng = Engine(s)
    raws: list[bytes] = []
    for tick in sorted(ticks):
        raws.extend(raw for _, raw in eng.process(ticks[tick]).decisions)
        if len(raws) >= 8_000:
            break
    docs = [decode_decision(r) for r in raws[:8_000]]
    train, test = docs[:4_000], docs[4_000:]
    _row("first compact form (0xD1)", encode_decision_v1, decode_decision, test)
    _row("zstd form (0xD2, what rtp writes by default)", encode_decision, decode_decision, test)
    print(f"  of which its pre-pass (before zstd): {per_value_us(_z_payload, test):.1f} us")
    scores = [d["home"]["scores"] for d in test]
    us = per_value_us(lambda x: _z_scores(x, len(x)), scores)
    print(f"  of which the home list's scores: {us:.2f} us")
    _row("fast form (0xD2 with dictionary 2, RTP_DECISION_FORM=fast)", encode_decision_fast,
         decode_decision, test)  # fmt: skip
    zdict = zs.train_dictionary(8_192, [orjson.dumps(d) for d in train])
    c = zs.ZstdCompressor(level=3, dict_data=zdict, write_content_size=False,
                          write_checksum=False, write_dict_id=False)  # fmt: skip
    dc = zs.ZstdDecompressor(dict_data=zdict)
    _row(
        "plain orjson + zstd, dictionary trained on these decisions",
        lambda d: c.compress(orjson.dumps(d)),
        lambda b: orjson.loads(dc.decompress(b, 1 << 16)),
        test,
    )


if __name__ == "__main__":
    main()
