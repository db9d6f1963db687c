"""Correct until the file named by $STANDIN_FAIL_FLAG exists, then every prediction fails."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import bentoml
from standin import Model

from {{ cookiecutter.package_name }}.serving.metadata import MetadataEndpoint
from {{ cookiecutter.package_name }}.serving.openapi import OpenApiAmendments


@bentoml.service(workers=1)
class Service:
    def __init__(self) -> None:
        self.model = Model()
        self.flag = Path(os.environ.get("STANDIN_FAIL_FLAG", "/nonexistent"))

    @bentoml.api
    def predict(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        if self.flag.exists():
            raise RuntimeError("injected failure")
        return {"predictions": self.model.predict(rows)}


Service.add_asgi_middleware(MetadataEndpoint, payload={})  # type: ignore[attr-defined]  # the instance name
Service.add_asgi_middleware(OpenApiAmendments)  # type: ignore[attr-defined]  # the answers it documents
