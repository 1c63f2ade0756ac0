"""Judge data and its verdicts: the grading conversations prepare-data writes and `evaluate` scores."""
