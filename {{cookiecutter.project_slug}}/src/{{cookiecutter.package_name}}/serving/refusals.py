"""A client's mistake is one WARNING line in the server log, not an ERROR with a traceback.

BentoML logs every exception its endpoint raises through one call,
``logger.error("Exception on %s [%s]", path, method, exc_info=True)``, whatever the answer:
a 400 for a misspelt field filled the log with ERROR tracebacks that were nobody's bug. This
filter rewrites those records for answers below 500 (pydantic's validation errors, BentoML's
client errors such as bad JSON, the service's 413) into one WARNING line saying what was
refused and why; a 5xx keeps its traceback.
"""

from __future__ import annotations

import logging

from bentoml.exceptions import BentoMLException
from pydantic import ValidationError

BENTOML_ENDPOINT_LOGGER = "bentoml._internal.server.http_app"
"""The logger of BentoML's ``log_exception``, which its endpoint wrapper calls on any exception."""


def client_status(error: BaseException | None) -> int | None:
    """The 4xx answer an exception becomes, or None when it is the server's fault (or unknown)."""
    if isinstance(error, ValidationError):
        return 400
    if isinstance(error, BentoMLException) and error.error_code.value < 500:
        return int(error.error_code.value)
    return None


def summary(error: BaseException) -> str:
    """What was wrong, on one line: the first field error of a validation error, else the message."""
    if isinstance(error, ValidationError) and error.errors():
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
        return f"{where}: {first['msg']}{more}"
    return " ".join(str(error).split())


class ClientErrorsAsWarnings(logging.Filter):
    """Rewrites BentoML's exception record of a 4xx answer to one WARNING line, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keeps the record; only a client error's is rewritten."""
        error = record.exc_info[1] if record.exc_info else None
        status = client_status(error)
        if status is None or error is None:
            return True
        path, method = record.args if isinstance(record.args, tuple) and len(record.args) == 2 else ("?", "?")
        record.msg, record.args = "%s %s answered %d: %s", (method, path, status, summary(error))
        record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        record.exc_info, record.exc_text = None, None
        return True


def install() -> None:
    """Filter BentoML's endpoint logger in this process (idempotent)."""
    logger = logging.getLogger(BENTOML_ENDPOINT_LOGGER)
    if not any(isinstance(existing, ClientErrorsAsWarnings) for existing in logger.filters):
        logger.addFilter(ClientErrorsAsWarnings())
