"""Crown the candidate in a throwaway registry, as a merged promotion does in production."""

from __future__ import annotations

from {{ cookiecutter.package_name }} import registry
from {{ cookiecutter.package_name }}.config import Config


def crown(cfg: Config) -> str:
    """Move ``champion`` to the candidate's version; the version crowned."""
    client = registry.connect(cfg.mlflow)
    candidate = registry.version_by_alias(client, cfg.mlflow.model_name, registry.CANDIDATE)
    assert candidate is not None, "train a candidate first"
    registry.set_alias(client, cfg.mlflow.model_name, registry.CHAMPION, str(candidate.version))
    return str(candidate.version)
