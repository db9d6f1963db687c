"""A correct service: what the deployment tests promote."""

from __future__ import annotations

from typing import Any

import bentoml
from standin import Model

from {{ cookiecutter.package_name }}.serving.metadata import MetadataEndpoint
from {{ cookiecutter.package_name }}.serving.openapi import OpenApiAmendments


@bentoml.service(workers=1)
class Service:
    def __init__(self) -> None:
        self.model = Model()

    @bentoml.api
    def predict(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {"predictions": self.model.predict(rows)}


Service.add_asgi_middleware(MetadataEndpoint, payload={})  # type: ignore[attr-defined]  # the instance name
Service.add_asgi_middleware(OpenApiAmendments)  # type: ignore[attr-defined]  # the answers it documents
