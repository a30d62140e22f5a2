"""The demo shop of ``rtp serve --demo``: plain HTML pages and ``rtp.js`` over the synthetic
catalogue of :mod:`rtp.tools.synth`, seeded with a synthetic history and run by the live flow."""
