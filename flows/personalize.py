"""The rtp dataflow for ``python -m bytewax.run flows.personalize:flow``.

Live (default): ``RTP_REDIS_URL=redis://localhost:6379/0 python -m bytewax.run
flows.personalize:flow`` reads the Redis stream ``rtp:events`` (``RTP_STREAM``) and writes
decisions to the same Redis.
Replay: ``RTP_SOURCE=path/to/file.csv RTP_FORMAT=taobao python -m bytewax.run ...``.
Recovery: add ``-r DIR -s 10 -b 10`` after creating the store with
``python -m bytewax.recovery DIR 1``, and set ``RTP_HOLD_PROFILES=1`` (profiles are then written
at snapshots, so a resumed run never reads a profile from its own future). Scale out with
processes: ``RTP_SHARDS=2 python -m bytewax.testing flows.personalize:flow -p 2`` locally, or
``bytewax.run -i/-a`` across machines.
"""

from rtp.flow.ready import flow_from_env

flow = flow_from_env()
