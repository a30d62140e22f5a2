"""The Bytewax wiring: sources, the one dataflow, sinks, and the ready-made live and replay
flows. The only package besides :mod:`rtp.store` that touches bytewax or redis.
"""
