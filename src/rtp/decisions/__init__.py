"""Decisions: candidates, ranking and business rules assembled per placement, with reasons.

- :mod:`rtp.decisions.home`: the ranked home list (the hot path) and the fallback;
- :mod:`rtp.decisions.placements`: hero, offer and assist around it, with sentences;
- :mod:`rtp.decisions.product`: product pages (one per item);
- :mod:`rtp.decisions.ranked`: the ranked-list type and the rules;
- :mod:`rtp.decisions.reasons`: reason codes and the sentences a person reads.
"""
