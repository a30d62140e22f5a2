"""Reason codes and the sentences a person reads (shared by the engine and the client).

The engine stores short codes where a placement shows nothing (``offer``, ``assist``) and a
code per recommended item (``why``); :func:`item_reason` and :data:`QUIET` turn them into
sentences. Placements that show something carry their own sentence (``reason``).
"""

from __future__ import annotations

ITEM = {
    "cv": "viewed together with what you just viewed",
    "re": "you viewed this earlier in this visit",
    "cart": "still in your cart",
    "cat": "popular in a category you browse",
    "pop": "trending now",
    "fav": "one of your favourites",
    "ex": "something different: trending elsewhere",
    "batch": "recommended for you (refreshed periodically)",
}

QUIET = {
    "no_intent": "no offer: purchase intent is not high enough",
    "offer_cap": "offer already shown this visit (cap 1 per visit)",
    "offer_cooldown": "an offer was shown recently (cooldown)",
    "no_frustration": "no sign of frustration",
    "assist_cooldown": "chat was offered recently (cooldown)",
    "assist_done": "chat was already offered for this",
    "not_personalized": "not personalized",
}


def item_reason(code: str) -> str:
    return ITEM.get(code, code)


def quiet_reason(code: str) -> str:
    return QUIET.get(code, code)
