"""Stage one of a decision: candidate generators learned incrementally from the stream
(item co-visitation, popularity, trending and category-popular items).
"""
