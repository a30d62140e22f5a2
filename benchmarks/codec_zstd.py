"""A measured alternative to the decision codec: orjson + zstd with a dictionary trained on
decisions, beside ``rtp.store.codec`` (process CPU time per value, bytes per value).

    .venv/bin/pip install zstandard   # not a dependency of rtp
    .venv/bin/python -m benchmarks.codec_zstd

The decisions are those the engine writes over the Taobao slice (no Redis): the first 4,000
train the dictionary, the next 4,000 are timed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from benchmarks.engine_harness import TAOBAO, taobao_ticks
from rtp.config import Settings
from rtp.engine import Engine
from rtp.store.codec import decode_decision, encode_decision


def per_value_us(fn: Callable[[Any], Any], values: Sequence[Any]) -> float:
    t = time.process_time()
    for v in values:
        fn(v)
    return (time.process_time() - t) / len(values) * 1e6


def main() -> None:
    try:
        import zstandard as zs
    except ImportError:
        sys.exit("skipped: pip install zstandard first (it is not a dependency of rtp)")
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
    codec_raw = [encode_decision(d) for d in test]
    print(f"codec: encode {per_value_us(encode_decision, test):.1f} us, decode "
          f"{per_value_us(decode_decision, codec_raw):.1f} us, "
          f"{sum(map(len, codec_raw)) / len(codec_raw):.1f} B")  # fmt: skip
    zdict = zs.train_dictionary(8_192, [orjson.dumps(d) for d in train])
    for level in (1, 3):
        c = zs.ZstdCompressor(level=level, dict_data=zdict, write_content_size=False,
                              write_checksum=False, write_dict_id=False)  # fmt: skip
        dc = zs.ZstdDecompressor(dict_data=zdict)
        packed = [c.compress(orjson.dumps(d)) for d in test]
        enc = per_value_us(lambda d, c=c: c.compress(orjson.dumps(d)), test)
        dec = per_value_us(lambda b, dc=dc: orjson.loads(dc.decompress(b, 1 << 16)), packed)
        print(f"orjson + zstd level {level}, 8 KB dictionary: encode {enc:.1f} us, decode "
              f"{dec:.1f} us, {sum(map(len, packed)) / len(packed):.1f} B")  # fmt: skip


if __name__ == "__main__":
    main()
