"""The pipeline's steps: the only modules the DAGs and the CLI call, one per stage."""
