"""Where Bytewax puts rtp's state keys (rtp.flow.routing), checked on real clusters of threads."""

from __future__ import annotations

import pytest

from rtp.flow.dataflow import Layout
from rtp.flow.routing import probe, shard_keys


@pytest.mark.parametrize("workers", [2, 3, 4, 5])
def test_the_routing_table_is_where_bytewax_puts_the_keys(workers: int) -> None:
    """The measured table gives, for each worker index, the first key Bytewax routes there."""
    assert probe(workers, candidates=200) == shard_keys(workers)


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_one_user_and_item_shard_per_worker_and_the_global_and_edge_steps_apart(
    workers: int,
) -> None:
    layout = Layout(workers)
    keys = shard_keys(workers)
    assert layout.keys == list(keys) and layout.shards == workers
    assert layout.global_key == keys[0] and layout.edge_key == keys[-1]
    # on more than one worker, the two single-key steps land on different workers
    assert (layout.global_key == layout.edge_key) == (workers == 1)


def test_more_shards_than_workers_are_placed_by_hash() -> None:
    layout = Layout(2, shards=4)
    assert layout.keys == ["s0", "s1", "s2", "s3"]
    assert (layout.global_key, layout.edge_key) == ("g", "e")
    assert layout.writers == ["i0", "i1", "i2", "i3", "g"]
