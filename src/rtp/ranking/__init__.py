"""Stage two of a decision: the online ranking model (River) over candidate features."""
