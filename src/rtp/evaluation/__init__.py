"""Evaluation: prequential metrics over served lists, and the session baselines (session-kNN,
STAN) they are compared with.
"""
