"""JSON errors: a stable code, a message, and a status that tells the client what to do.

Every error answer is ``{"error": {"code": "...", "message": "..."}}``:

======  ==========================================  ============================================
status  codes                                       what the client should do
======  ==========================================  ============================================
400     ``invalid_json``, ``invalid_request``       fix the request
401     ``unauthorized``                            send the API key
404     ``not_found``, ``unknown_user``             nothing to read (or a wrong path)
405     ``method_not_allowed``                      use another method
413     ``request_too_large``, ``event_too_large``  split the request (or shrink the event)
429     ``backpressure``                            back off: retry after ``Retry-After`` seconds
503     ``store_unavailable``                       retry (Redis did not answer)
======  ==========================================  ============================================
"""

from __future__ import annotations

import orjson
from starlette.responses import Response

__all__ = ["ApiError", "error_response"]


class ApiError(Exception):
    """An error answer: raised by endpoint code, turned into JSON by the app."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    return Response(body, status_code=status, media_type="application/json", headers=headers)
