"""Every MLflow write: runs, logged models, plots and the registry's gate."""
