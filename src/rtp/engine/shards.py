"""Which shard owns a user or an item: stable across processes and runs (unlike ``hash``)."""

from __future__ import annotations

import zlib


def user_shard_of(user: str, shards: int) -> int:
    if shards == 1:
        return 0
    return zlib.crc32(user.encode("utf-8", "surrogatepass")) % shards


def item_shard_of(item: str, shards: int) -> int:
    if shards == 1:
        return 0
    return zlib.crc32(item.encode("utf-8", "surrogatepass")) % shards
