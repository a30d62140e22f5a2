"""The Redis store: the key schema, batched writes, the client applications read decisions
with, the live stream producers append to, and an embedded redis-server.
"""
