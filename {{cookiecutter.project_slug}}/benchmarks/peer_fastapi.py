"""The plain FastAPI peer of ``bench-serve``: the same model, schema and scoring, no batching.

What a user would write without BentoML: one model call per request, run by uvicorn with as
many worker processes as the bench asks for (one per core is the usual choice). uvicorn starts
each worker from an import string, so the app is made by ``create_app`` from environment
variables the bench sets: ``PEER_MODEL_DIR`` (an MLflow model folder), ``PEER_TASK``,
``PEER_ID_COLUMN`` (empty: none) and ``SERVING_NOOP_MODEL`` (``true``: a constant instead of
the model, the stack's own ceiling).

``python peer_fastapi.py PORT WORKERS`` serves it. With more than one worker, ``uvicorn
--workers`` binds the listening socket itself without a protocol number, so asyncio does not
set ``TCP_NODELAY`` on its connections, and every keep-alive answer waits out the client's
delayed ACK: p50 ~50 ms at one client instead of ~9. This launcher binds the same way and sets
``TCP_NODELAY`` on the listener (accepted connections inherit it on Linux), so the peer is
measured at its best.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

import mlflow
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from {{ cookiecutter.package_name }}.serving import schema, scoring


def create_app() -> FastAPI:
    """The app for one uvicorn worker, configured from the environment (see the module doc)."""
    model_path = Path(os.environ["PEER_MODEL_DIR"])
    id_column = os.environ.get("PEER_ID_COLUMN") or None
    noop = os.environ.get("SERVING_NOOP_MODEL", "").lower() == "true"
    columns = schema.read_columns(model_path)
    request_model = schema.request_model(schema.row_model(columns, id_column), 10_000)
    model = mlflow.sklearn.load_model(str(model_path))
    scorer = scoring.Scorer(model, columns, os.environ["PEER_TASK"], id_column, noop)
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    def predict(body: BaseModel) -> dict[str, Any]:
        frame = scorer.frame(body.rows)  # type: ignore[attr-defined]
        labels, probabilities = scorer.score(frame)
        return {"model_version": "", "predictions": scorer.answers(frame, labels, probabilities)}

    # The request model is built at runtime, so the annotation is set here, not in the source.
    predict.__annotations__ = {"body": request_model, "return": dict[str, Any]}
    app.add_api_route("/predict", predict, methods=["POST"])
    return app


def main(argv: list[str]) -> int:
    """``PORT WORKERS``: serve ``create_app`` on loopback, ``TCP_NODELAY`` on every connection."""
    port, workers = int(argv[0]), int(argv[1])
    config = uvicorn.Config(
        "peer_fastapi:create_app",
        factory=True,
        host="127.0.0.1",
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )
    listener = config.bind_socket()
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if workers > 1:
        uvicorn.supervisors.Multiprocess(config, sockets=[listener]).run()
    else:
        uvicorn.Server(config).run(sockets=[listener])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
