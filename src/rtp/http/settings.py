"""The settings of ``rtp serve``: one frozen object, read from ``RTP_*`` only at the edge.

:class:`ServeSettings` wraps the library's :class:`rtp.config.Settings` (Redis URL, key prefix,
stream, timeouts) and adds what only the HTTP doors need. Each field has an environment variable
(``RTP_API_KEY``, ``RTP_HTTP_HOST``, ...; see :meth:`ServeSettings.from_env`), so an ASGI server
started with ``--factory`` builds the same app as ``rtp serve``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rtp.config import Settings
from rtp.errors import ConfigError

__all__ = ["ServeSettings"]

# field -> environment variable (the rtp Settings fields keep their own RTP_<FIELD> names)
_ENV = {
    "host": "RTP_HTTP_HOST",
    "port": "RTP_HTTP_PORT",
    "workers": "RTP_HTTP_WORKERS",
    "api_key": "RTP_API_KEY",
    "trust_forwarded": "RTP_TRUST_FORWARDED",
    "demo": "RTP_DEMO",
    "max_event_bytes": "RTP_MAX_EVENT_BYTES",
    "max_request_bytes": "RTP_MAX_REQUEST_BYTES",
    "dedupe_ttl_s": "RTP_DEDUPE_TTL_S",
    "cors_origins": "RTP_CORS_ORIGINS",
    "edge_max_age_s": "RTP_EDGE_MAX_AGE_S",
    "threads": "RTP_HTTP_THREADS",
}


@dataclass(frozen=True)
class ServeSettings:
    """What the HTTP app needs besides the library settings (``rtp``)."""

    rtp: Settings = field(default_factory=Settings)
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    api_key: str | None = None  # required on writes and deletes when set
    trust_forwarded: bool = False  # take the client IP from X-Forwarded-For's first hop
    demo: bool = False  # also serve the demo shop at /shop
    max_event_bytes: int = 32 * 1024
    max_request_bytes: int = 500 * 1024
    dedupe_ttl_s: int = 900  # how long a messageId (or fingerprint) is remembered
    cors_origins: str = "*"  # Access-Control-Allow-Origin for the /v1 endpoints
    edge_max_age_s: int = 60  # Cache-Control max-age of the edge model
    threads: int = 32  # worker threads for blocking Redis calls (appends, forget)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, rtp: Settings | None = None, **overrides: Any
    ) -> ServeSettings:
        """Settings from ``RTP_*`` variables (``env``: default ``os.environ``), then overrides."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        for name, var in _ENV.items():
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            values[name] = _coerce(var, str(types[name]), raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["rtp"] = rtp if rtp is not None else Settings.from_env(env)
        return cls(**values)

    def replace(self, **changes: Any) -> ServeSettings:
        return dataclasses.replace(self, **changes)

    def to_env(self) -> dict[str, str]:
        """The environment variables that rebuild these settings in another process."""
        out: dict[str, str] = {}
        for name, var in _ENV.items():
            value = getattr(self, name)
            if value is None:
                continue
            out[var] = ("1" if value else "0") if isinstance(value, bool) else str(value)
        for f in dataclasses.fields(Settings):
            if f.name == "extra":
                continue
            value = getattr(self.rtp, f.name)
            if value is not None:
                var = "RTP_" + f.name.upper()
                out[var] = ("1" if value else "0") if isinstance(value, bool) else str(value)
        return out


def _coerce(var: str, type_: str, raw: str) -> Any:
    try:
        if type_.startswith("int"):
            return int(raw)
        if type_.startswith("bool"):
            return raw.lower() in ("1", "true", "yes", "on")
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not a {type_}") from None
    return raw
