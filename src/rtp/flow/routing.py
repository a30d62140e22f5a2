"""Which Bytewax worker a state key lands on, so each worker gets one user shard and one item
shard (and none gets two).

Bytewax routes a stateful step's key to worker ``hash(key) % workers`` with a hash of its own
(not Python's). :func:`shard_keys` returns, for ``workers`` workers, one key per worker index
(``keys[i]`` is routed to worker ``i``): from a table measured for Bytewax 0.21.1 up to
32 workers (``tests/flows/test_routing.py`` checks it against a real cluster), or by
probing a cluster of threads once for larger counts. If routing ever changed, shards would only
be placed less evenly: results do not depend on where a shard runs.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

# workers -> the number n of the key f"k{n}" routed to each worker index
_TABLE: dict[int, tuple[int, ...]] = {
    1: (0,),
    2: (2, 0),
    3: (2, 0, 6),
    4: (5, 18, 2, 0),
    5: (4, 3, 0, 1, 9),
    6: (2, 0, 6, 7, 5, 11),
    7: (1, 3, 2, 0, 23, 4, 15),
    8: (5, 38, 9, 0, 25, 18, 2, 4),
    9: (22, 0, 10, 3, 4, 16, 2, 1, 6),
    10: (15, 7, 2, 1, 9, 4, 3, 0, 6, 18),
    11: (9, 3, 6, 8, 1, 2, 0, 23, 11, 4, 14),
    12: (40, 38, 6, 7, 5, 18, 2, 0, 42, 21, 17, 11),
    13: (2, 21, 1, 14, 9, 0, 52, 3, 6, 11, 5, 7, 15),
    14: (6, 8, 2, 0, 33, 4, 15, 1, 3, 24, 9, 23, 10, 32),
    15: (15, 35, 10, 13, 20, 31, 3, 0, 6, 9, 4, 14, 2, 1, 18),
    16: (58, 81, 9, 0, 25, 18, 3, 4, 5, 38, 45, 1, 34, 21, 2, 35),
    17: (25, 0, 1, 40, 14, 3, 4, 30, 90, 2, 28, 5, 20, 6, 23, 15, 7),
    18: (45, 0, 10, 7, 25, 16, 2, 1, 6, 22, 5, 18, 3, 4, 101, 32, 26, 11),
    19: (1, 8, 0, 20, 43, 11, 3, 14, 6, 7, 13, 12, 9, 4, 2, 103, 30, 47, 89),
    20: (39, 21, 2, 1, 25, 121, 3, 0, 42, 18, 15, 7, 5, 32, 9, 4, 56, 30, 6, 19),
    21: (7, 5, 24, 9, 49, 10, 15, 1, 16, 2, 0, 36, 45, 46, 6, 3, 27, 18, 23, 4, 51),
    22: (9, 60, 6, 8, 29, 7, 10, 23, 26, 4, 14, 20, 3, 38, 12, 1, 2, 0, 54, 11, 39, 16),
    23: (103, 17, 11, 3, 7, 45, 16, 19, 25, 1, 23, 26, 4, 0, 14, 2, 29, 33, 9, 22, 5, 47, 8),
    24: (63, 38, 14, 7, 25, 18, 2, 4, 42, 44, 41, 16, 40, 69, 6, 43, 5, 94, 9, 0, 53, 21, 17, 11),
    25: (74, 38, 2, 13, 59, 4, 7, 0, 49, 9, 31, 3, 5, 6, 25, 15, 14, 12, 1, 43, 73, 35, 10, 27, 18),
    26: (
        2,
        21,
        12,
        24,
        9,
        0,
        59,
        23,
        6,
        11,
        5,
        7,
        15,
        16,
        36,
        1,
        14,
        20,
        42,
        52,
        3,
        19,
        54,
        32,
        83,
        43,
    ),
    27: (
        23,
        12,
        10,
        9,
        27,
        108,
        32,
        26,
        19,
        22,
        0,
        14,
        7,
        4,
        94,
        2,
        46,
        6,
        68,
        5,
        18,
        3,
        8,
        16,
        43,
        1,
        24,
    ),
    28: (
        12,
        21,
        2,
        0,
        55,
        129,
        15,
        1,
        5,
        24,
        9,
        65,
        25,
        32,
        6,
        8,
        39,
        18,
        33,
        4,
        75,
        80,
        3,
        27,
        40,
        23,
        10,
        43,
    ),
    29: (
        5,
        1,
        15,
        6,
        3,
        7,
        17,
        16,
        13,
        19,
        97,
        78,
        24,
        47,
        52,
        56,
        28,
        38,
        12,
        2,
        0,
        4,
        70,
        118,
        11,
        36,
        62,
        95,
        10,
    ),
    30: (
        15,
        35,
        10,
        32,
        25,
        96,
        3,
        0,
        6,
        43,
        39,
        52,
        2,
        1,
        53,
        62,
        56,
        11,
        13,
        20,
        31,
        7,
        5,
        51,
        9,
        4,
        14,
        22,
        58,
        18,
    ),
    31: (
        2,
        19,
        7,
        46,
        33,
        23,
        11,
        4,
        47,
        9,
        51,
        0,
        3,
        5,
        39,
        13,
        8,
        22,
        18,
        16,
        1,
        25,
        37,
        24,
        20,
        60,
        32,
        10,
        43,
        17,
        27,
    ),
    32: (
        166,
        81,
        9,
        48,
        25,
        23,
        3,
        11,
        12,
        38,
        45,
        7,
        39,
        21,
        2,
        35,
        58,
        92,
        163,
        0,
        55,
        18,
        10,
        4,
        5,
        84,
        82,
        1,
        34,
        30,
        29,
        50,
    ),
}


@functools.cache
def shard_keys(workers: int) -> tuple[str, ...]:
    """One state key per worker index: ``shard_keys(w)[i]`` lands on worker ``i``."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    nums = _TABLE.get(workers)
    if nums is None:
        return probe(workers)
    return tuple(f"k{n}" for n in nums)


def probe(workers: int, candidates: int = 4_000) -> tuple[str, ...]:
    """Measure where keys land on a cluster of ``workers`` threads (a second or two)."""
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.inputs import DynamicSource, StatelessSourcePartition
    from bytewax.testing import TestingSink, cluster_main

    thread_worker: dict[int, int] = {}

    class _Part(StatelessSourcePartition[Any]):
        def __init__(self, index: int) -> None:
            self.index = index
            self.done = False
            thread_worker[threading.get_ident()] = index

        def next_batch(self) -> list[Any]:
            if self.done:
                raise StopIteration
            self.done = True
            return [(f"k{n}", None) for n in range(candidates)] if self.index == 0 else []

    class _Source(DynamicSource[Any]):
        def build(self, step_id: str, worker_index: int, worker_count: int) -> _Part:
            return _Part(worker_index)

    out: list[Any] = []
    flow = Dataflow("rtp_routing_probe")
    keyed = op.input("in", flow, _Source())
    where = op.stateful_map("where", keyed, lambda s, _v: (s, threading.get_ident()))
    op.output("out", where, TestingSink(out))
    cluster_main(flow, [], 0, worker_count_per_proc=workers)
    landed = {key: thread_worker[tid] for key, tid in out}
    keys = []
    for w in range(workers):
        key = next((f"k{n}" for n in range(candidates) if landed[f"k{n}"] == w), None)
        if key is None:
            raise RuntimeError(f"no key among {candidates} lands on worker {w} of {workers}")
        keys.append(key)
    return tuple(keys)
