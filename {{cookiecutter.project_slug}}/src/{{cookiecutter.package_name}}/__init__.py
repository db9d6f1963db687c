"""{{ cookiecutter.project_name | replace('"', "'") | replace('\\', '/') }}: a tabular model taken from data to production with GitOps."""

import os

# OpenMP threads (scikit-learn's gradient boosting) wait for work by spinning; on cores shared with
# other work they spin against it: one hgb train measured 26-42 s passive and 106-281 s spinning
# beside a busy machine. Waiting passively costs nothing on a quiet one. libgomp reads the setting
# once, when it is loaded, so it is set here, before anything imports scikit-learn; an explicit
# OMP_WAIT_POLICY wins. (GNU libgomp manual, "OMP_WAIT_POLICY".)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
