"""Experiments: A/B arms (sticky assignment), per-arm metrics, bandits and their statistics."""
