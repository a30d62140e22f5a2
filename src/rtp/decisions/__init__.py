"""Decisions: candidates, ranking and business rules assembled per placement, with reasons."""
