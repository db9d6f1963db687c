"""A client's mistake in the server log: one WARNING line; the server's own failure keeps its traceback."""

from __future__ import annotations

import logging
import sys

import pytest
from bentoml.exceptions import BadInput, InternalServerError
from pydantic import BaseModel, ValidationError

from {{ cookiecutter.package_name }}.serving import refusals


class Row(BaseModel):
    tenure_months: int


def raised(error: Exception) -> logging.LogRecord:
    """The record BentoML's ``log_exception`` makes for ``error`` (its message and arguments)."""
    try:
        raise error
    except Exception:
        info = sys.exc_info()
    return logging.LogRecord(
        refusals.BENTOML_ENDPOINT_LOGGER,
        logging.ERROR,
        __file__,
        1,
        "Exception on %s [%s]",
        ("/predict", "POST"),
        info,
    )


def validation_error() -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        Row.model_validate({"tenure_months": "twelve"})
    return caught.value


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (validation_error, "POST /predict answered 400: tenure_months: Input should be a valid integer"),
        (
            lambda: BadInput("Invalid JSON input received"),
            "POST /predict answered 400: Invalid JSON input received",
        ),
    ],
    ids=["validation", "bad-json"],
)
def test_client_errors_as_warnings__a_4xx_is_one_warning_line(error: object, line: str) -> None:
    record = raised(error())  # type: ignore[operator]
    assert refusals.ClientErrorsAsWarnings().filter(record)
    assert (record.levelname, record.exc_info) == ("WARNING", None)
    assert record.getMessage().startswith(line)
    assert "\n" not in record.getMessage()


def test_client_errors_as_warnings__a_5xx_keeps_its_traceback() -> None:
    record = raised(InternalServerError("boom"))
    assert refusals.ClientErrorsAsWarnings().filter(record)
    assert record.levelname == "ERROR"
    assert record.exc_info is not None


def test_install__filters_bentoml_s_endpoint_logger_once() -> None:
    refusals.install()
    refusals.install()
    logger = logging.getLogger(refusals.BENTOML_ENDPOINT_LOGGER)
    assert sum(isinstance(f, refusals.ClientErrorsAsWarnings) for f in logger.filters) == 1
