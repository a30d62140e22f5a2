"""Evaluation: prequential metrics over served lists (:mod:`rtp.evaluation.metrics`), the
session baselines they are compared with (session-kNN, STAN: :mod:`rtp.evaluation.baselines`),
and the quality of served content feeds (diversity, editorial exposure:
:mod:`rtp.evaluation.feeds`).
"""
