"""The keyed steps' logic as plain Python: the user step (sessions, profiles, decisions), the
item step (co-visitation, popularity, product pages) and the merge step (ranker weights), and
the model view a user step decides with.
"""
