"""{{ cookiecutter.project_name | replace('"', "'") | replace('\\', '/') }}: a tabular model taken from data to production with GitOps."""
