"""Session context and long-term profiles: what one user is doing now, and what their finished
sessions add up to. Plain Python: no bytewax, no redis.
"""
