"""Command-line tools: ``rtp`` (replay, live, evaluate, forget, experiments), the demo and the
synthetic stream generator.
"""
