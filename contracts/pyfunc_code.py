"""The two-stage pyfunc as MLflow "models from code": the file MLflow logs and runs to load it.

Nothing is unpickled: loading runs this file, whose import resolves from the ``code/`` folder
logged beside it (``contracts.pyfunc.CODE_FILES``), so no project checkout is needed.
"""

from mlflow.models import set_model

from contracts.pyfunc import TwoStagePyfunc

set_model(TwoStagePyfunc())
