"""What pipelines and serving agree on: settings, the data contract, pseudonyms, the model bundle.

Both sides import this package and it imports neither, so a served Bento ships ``contracts/``,
``models/`` and ``serving/`` only, and a change here is a change to both sides at once.
"""

import os

# MLflow 3's usage telemetry would call out of the machine (ours reach package registries only),
# and its background thread sets and unsets an environment variable while other threads read the
# environment (a KeyError inside an MLflow call, seen failing a DAG task). Off unless a user
# says otherwise. Set here, before any contracts module imports mlflow (make sets it too).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# A logged model's environment is its requirements.txt (``contracts.pyfunc``). MLflow 3 would also
# copy the uv project of the logging process's working folder into it, which makes
# ``--env-manager uv`` sync this whole project (Airflow, BentoML...) from a pyproject whose source
# the model does not carry, and makes the model depend on where it was logged from.
os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")
