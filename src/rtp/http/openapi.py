"""The OpenAPI 3.1 document of the HTTP doors (written by hand: the shapes are declared once,
here, and ``/openapi.json`` serves them)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

__all__ = ["openapi_document"]

_ERROR = {"$ref": "#/components/responses/Error"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_USER = {"name": "user", "in": "path", "required": True, "schema": {"type": "string"}}
_WRITE_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}, {}]

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "RtpEvent": {
        "type": "object",
        "description": "An rtp schema-v1 event (see rtp.capture.events).",
        "required": ["type", "ts"],
        "properties": {
            "v": {"const": 1},
            "type": {
                "enum": [
                    "page_view",
                    "product_view",
                    "click",
                    "search",
                    "scroll",
                    "hover",
                    "add_to_cart",
                    "remove_from_cart",
                    "purchase",
                    "help_view",
                    "add_to_wishlist",
                    "forget",
                    "dnp",
                ]
            },
            "user": {"type": "string"},
            "anon": {"type": "string"},
            "ts": {"type": ["number", "string"]},
            "item": {"type": "string"},
            "category": {"type": "string"},
            "price": {"type": "number"},
            "query": {"type": "string"},
            "session": {"type": "string"},
            "messageId": {"type": "string"},
            "context": {"type": "object"},
        },
    },  # fmt: skip
    "SegmentCall": {
        "type": "object",
        "description": "A Segment-style call (track, page, screen, identify, group, alias).",
        "required": ["type"],
        "properties": {
            "type": {"enum": ["track", "page", "screen", "identify", "group", "alias"]},
            "event": {"type": "string"},
            "userId": {"type": ["string", "integer"]},
            "anonymousId": {"type": "string"},
            "messageId": {"type": "string"},
            "timestamp": {"type": ["string", "number"]},
            "sentAt": {"type": ["string", "number"]},
            "properties": {"type": "object"},
            "context": {"type": "object"},
        },
    },
    "EventsBody": {
        "oneOf": [
            _ref("RtpEvent"),
            _ref("SegmentCall"),
            {"type": "array", "items": {"oneOf": [_ref("RtpEvent"), _ref("SegmentCall")]}},
            {
                "type": "object",
                "required": ["batch"],
                "properties": {
                    "batch": {"type": "array", "items": _ref("SegmentCall")},
                    "context": {"type": "object"},
                    "sentAt": {"type": ["string", "number"]},
                },
            },
        ]
    },
    "EventsResult": {
        "type": "object",
        "required": ["accepted", "appended", "rejected", "duplicates", "bots", "ignored"],
        "properties": {
            "accepted": {"type": "integer", "description": "records accepted"},
            "appended": {"type": "integer", "description": "events appended to the stream"},
            "rejected": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["index", "reason", "detail"],
                    "properties": {
                        "index": {"type": "integer"},
                        "reason": {"type": "string"},
                        "detail": {"type": "string"},
                    },
                },
            },
            "duplicates": {"type": "integer"},
            "bots": {"type": "integer"},
            "ignored": {"type": "integer"},
        },
    },
    "Decision": {
        "type": "object",
        "required": ["placement", "reason"],
        "properties": {
            "placement": {"type": "string"},
            "mode": {"enum": ["ranked", "degraded", "non_personalized", "fallback"]},
            "reason": {"type": "string"},
            "items": {
                "type": "array",
                "items": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}]},
            },
            "why": {"type": "array", "items": {"type": "string"}},
            "reasons": {"type": "array", "items": {"type": "string"}},
            "theme": {"type": "string"},
            "categories": {"type": "array", "items": {"type": "string"}},
            "show": {"type": "boolean"},
            "ts": {"type": "number"},
            "model": {"type": "string"},
        },
    },
    "RerankBody": {
        "type": "object",
        "required": ["user", "items"],
        "properties": {
            "user": {"type": "string"},
            "query": {"type": "string"},
            "items": {"type": "array", "items": {"type": "string"}, "maxItems": 1000},
        },
    },
    "RerankResult": {
        "type": "object",
        "required": ["user", "query", "mode", "items"],
        "properties": {
            "user": {"type": "string"},
            "query": {"type": "string"},
            "mode": {"enum": ["personalized", "original"]},
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "score", "reason"],
                    "properties": {
                        "id": {"type": "string"},
                        "score": {"type": "number"},
                        "reason": {"type": "string"},
                    },
                },
            },
        },
    },
    "EdgeModel": {
        "type": "object",
        "required": ["v", "version", "rules"],
        "properties": {
            "v": {"const": 1},
            "kind": {"const": "rtp.edge"},
            "version": {"type": "string"},
            "ts": {"type": "number"},
            "dayparts": {"type": "array"},
            "rules": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["when", "reason"],
                    "properties": {
                        "when": {"type": "object", "additionalProperties": {"type": "string"}},
                        "hero": {"type": "string"},
                        "categories": {"type": "array", "items": {"type": "string"}},
                        "items": {"type": "array", "items": {"type": "string"}},
                        "message": {"type": "string"},
                        "reason": {"type": "string"},
                        "support": {"type": "number"},
                    },
                },
            },
        },
    },
}


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (a fresh copy is not needed: callers only serialize it)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "rtp HTTP doors",
            "version": "1",
            "description": "Event collector, decision API and edge model of rtp "
            "(real-time personalization).",
        },
        "components": {
            "schemas": _SCHEMAS,
            "responses": {"Error": _json(_ref("Error"), "an error: {error: {code, message}}")},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
        "paths": {
            "/v1/events": {
                "post": {
                    "summary": "Collect events (rtp schema v1 or Segment calls)",
                    "operationId": "postEvents",
                    "security": _WRITE_SECURITY,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("EventsBody")}},
                    },
                    "responses": {
                        "202": _json(_ref("EventsResult"), "what was accepted and why not"),
                        **{s: _ERROR for s in ("400", "401", "413", "429", "503")},
                    },
                }
            },
            "/v1/decisions/{user}": {
                "get": {
                    "summary": "A placement's decision for a user",
                    "operationId": "getDecision",
                    "parameters": [
                        _USER,
                        {
                            "name": "placement",
                            "in": "query",
                            "schema": {
                                "enum": [
                                    "home",
                                    "product",
                                    "recent",
                                    "nav",
                                    "hero",
                                    "offer",
                                    "assist",
                                ],
                                "default": "home",
                            },
                        },  # fmt: skip
                        {"name": "item", "in": "query", "schema": {"type": "string"}},
                        {"name": "fallback", "in": "query", "schema": {"enum": ["0", "1"]}},
                        {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": _json(_ref("Decision"), "the decision (ETag header)"),
                        "304": {"description": "unchanged since the ETag given"},
                        **{s: _ERROR for s in ("400", "404", "503")},
                    },
                }
            },
            "/v1/rerank": {
                "post": {
                    "summary": "Search results reordered by the user's session, with reasons",
                    "operationId": "rerank",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("RerankBody")}},
                    },
                    "responses": {
                        "200": _json(_ref("RerankResult"), "the items, reordered"),
                        **{s: _ERROR for s in ("400", "413", "503")},
                    },
                }
            },
            "/v1/users/{user}": {
                "delete": {
                    "summary": "Forget a user now (and tell the flow)",
                    "operationId": "forgetUser",
                    "security": _WRITE_SECURITY,
                    "parameters": [_USER],
                    "responses": {
                        "202": _json({"type": "object"}, "forgotten"),
                        **{s: _ERROR for s in ("400", "401", "503")},
                    },
                }
            },
            "/v1/users/{user}/consent": {
                "put": {
                    "summary": "Set whether rtp may personalize for a user",
                    "operationId": "setConsent",
                    "security": _WRITE_SECURITY,
                    "parameters": [_USER],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["personalize"],
                                    "properties": {"personalize": {"type": "boolean"}},
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json({"type": "object"}, "the new setting"),
                        **{s: _ERROR for s in ("400", "401", "503")},
                    },
                }
            },
            "/v1/edge-model": {
                "get": {
                    "summary": "The edge model document rtp.js evaluates in the browser",
                    "operationId": "getEdgeModel",
                    "responses": {
                        "200": _json(_ref("EdgeModel"), "the document (ETag, max-age)"),
                        "304": {"description": "unchanged since the ETag given"},
                        "503": _ERROR,
                    },
                }
            },
            "/rtp.js": {
                "get": {
                    "summary": "The browser SDK",
                    "operationId": "getScript",
                    "responses": {
                        "200": {
                            "description": "JavaScript",
                            "content": {"application/javascript": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Redis answers PING",
                    "operationId": "health",
                    "responses": {
                        "200": _json({"type": "object"}, "healthy"),
                        "503": _ERROR,
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics (text format)",
                    "operationId": "metrics",
                    "responses": {
                        "200": {
                            "description": "text/plain; version=0.0.4",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
                }
            },
        },
    }
