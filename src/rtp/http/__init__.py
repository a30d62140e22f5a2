"""The HTTP doors: the event collector, the decision API, the edge model and ``rtp.js``.

::

    from rtp.http import ServeSettings, create_app

    app = create_app(ServeSettings.from_env())   # any ASGI server runs it

``rtp serve`` (:mod:`rtp.http.cli`) runs it on uvicorn. See ``docs/http.md``.
"""

from __future__ import annotations

from rtp.http.app import create_app
from rtp.http.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]
