"""Stage one of a decision: candidate generators learned incrementally from the stream.

- :mod:`rtp.candidates.covisit`: item co-visitation neighbours;
- :mod:`rtp.candidates.popularity`: trending and category-popular items, and the catalogue;
- :mod:`rtp.candidates.generate`: one user's candidates from those and their session;
- :mod:`rtp.candidates.decay`: decay by inflation, shared by the learners.
"""

from rtp.candidates.covisit import CoVisitation
from rtp.candidates.popularity import Popularity

__all__ = ["CoVisitation", "Popularity"]
