"""The HTTP doors: the event collector, the decision API, the edge model and ``rtp.js``.

::

    from rtp.http import ServeSettings, create_app

    app = create_app(ServeSettings.from_env())   # any ASGI server runs it

``rtp serve`` (:mod:`rtp.http.cli`) runs it on uvicorn. See ``docs/http.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rtp.http.app import create_app
    from rtp.http.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]


def __getattr__(name: str) -> Any:
    # imported on first use: ``rtp serve``'s argument parser (rtp.http.cli) lives in this
    # package, and every ``rtp`` command builds it; Starlette loads only when a server runs
    if name == "create_app":
        from rtp.http.app import create_app

        return create_app
    if name == "ServeSettings":
        from rtp.http.settings import ServeSettings

        return ServeSettings
    raise AttributeError(f"module 'rtp.http' has no attribute {name!r}")
