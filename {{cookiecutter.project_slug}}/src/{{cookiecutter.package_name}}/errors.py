"""The one base error of the pipeline: a failure the user can fix, told in one line.

Every stage raises a subclass (bad data, a missing model or bento, a refused desired state, a
router that will not start) whose message names what is wrong and how to fix it. The command
lines catch :class:`PipelineError` alone, print its message and exit 1; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations


class PipelineError(Exception):
    """An expected failure whose message says what to do about it."""
