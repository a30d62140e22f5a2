"""EmbeddedRedis: a private redis-server on a unix socket, gone after exit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis

from rtp.config import Settings
from rtp.errors import ConfigError
from rtp.store.server import EmbeddedRedis, redis_url
from rtp.store.store import Store


def test_embedded_starts_answers_and_is_gone_after_exit() -> None:
    with EmbeddedRedis() as server:
        assert server.url.startswith("unix://")
        socket_dir = Path(server.socket_path).parent
        pid = server.proc.pid if server.proc else -1
        store = Store.from_url(server.url)
        assert store.ping()
        r = redis.Redis.from_url(server.url)
        assert r.set("k", "v") and r.get("k") == b"v"
        assert r.config_get("port")["port"] == "0"  # no TCP listener
        assert r.config_get("appendonly")["appendonly"] == "no"
        r.close()
        store.close()
    assert not server.running
    assert not socket_dir.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_persist_dir_keeps_data_across_restarts(tmp_path: Path) -> None:
    with EmbeddedRedis(persist_dir=tmp_path / "data") as server:
        r = redis.Redis.from_url(server.url)
        r.set("kept", "yes")
        r.close()
    with EmbeddedRedis(persist_dir=tmp_path / "data") as server:
        r = redis.Redis.from_url(server.url)
        assert r.get("kept") == b"yes"
        r.close()


def test_missing_redis_server_explains_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ConfigError) as info:
        EmbeddedRedis()
    assert "apt-get install redis-server" in str(info.value)
    assert "RTP_REDIS_URL" in str(info.value)
    with pytest.raises(ConfigError), redis_url(Settings()):
        pass


def test_redis_url_prefers_the_configured_url(monkeypatch: pytest.MonkeyPatch) -> None:
    with redis_url(Settings(redis_url="redis://example.invalid:6379/0")) as url:
        assert url == "redis://example.invalid:6379/0"
    with redis_url(Settings()) as url:
        assert url.startswith("unix://")
        r = redis.Redis.from_url(url)
        assert r.ping()
        r.close()
