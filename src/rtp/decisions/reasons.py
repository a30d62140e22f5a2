"""Reason codes and the sentences a person reads (shared by the engine and the client).

The engine stores short codes where a placement shows nothing (``offer``, ``assist``) and a
code per recommended item (``why``); :func:`item_reason` and :data:`QUIET` turn them into
sentences. Placements that show something carry their own sentence (``reason``).
"""

from __future__ import annotations

ITEM = {
    "cv": "viewed together with what you just viewed",
    "cv2": "viewed with items that go with what you viewed",
    "re": "you viewed this earlier in this visit",
    "cart": "still in your cart",
    "cat": "popular in a category you browse",
    "pop": "trending now",
    "fav": "one of your favourites",
    "ex": "something different: trending elsewhere",
    "batch": "recommended for you (refreshed periodically)",
    "pre": "recommended for you earlier in this visit",
    "ed": "an editor's pick",
    "feed": "fresh in the topics you read",
}

# One character per home item in storage ("why": "rkkkp..."); the client expands them.
CHAR = {
    "cv": "v",
    "cv2": "w",
    "re": "r",
    "cart": "c",
    "cat": "k",
    "pop": "p",
    "fav": "f",
    "ex": "x",
    "batch": "b",
    "pre": "s",
    "ed": "e",
    "feed": "n",
}
CODE = {c: code for code, c in CHAR.items()}

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
    """The sentence for an item's reason code (or its one-character storage form)."""
    return ITEM.get(CODE.get(code, code), code)


def expand_why(why: str | list[str]) -> list[str]:
    """Stored ``why`` (one character per item) -> reason codes."""
    if isinstance(why, list):
        return why
    return [CODE.get(c, c) for c in why]


def quiet_reason(code: str) -> str:
    return QUIET.get(code, code)
