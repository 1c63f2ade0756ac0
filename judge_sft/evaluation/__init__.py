"""`judge-sft evaluate`: how well a judge judges, against the human labels of a judge Parquet (docs/evaluation.md)."""
