"""Ready and healthy until the first prediction, which kills the worker."""

from __future__ import annotations

import os
from typing import Any

import bentoml

from {{ cookiecutter.package_name }}.serving.metadata import MetadataEndpoint
from {{ cookiecutter.package_name }}.serving.openapi import OpenApiAmendments


@bentoml.service(workers=1)
class Service:
    @bentoml.api
    def predict(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        os._exit(1)


Service.add_asgi_middleware(MetadataEndpoint, payload={})  # type: ignore[attr-defined]  # the instance name
Service.add_asgi_middleware(OpenApiAmendments)  # type: ignore[attr-defined]  # the answers it documents
