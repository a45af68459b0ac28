"""The errors a user can cause. Every entry point (``molvae.entry``) reports them in one line, exit
code 2, without a traceback (set ``MOLVAE_DEBUG=1`` to see it). This module imports nothing of molvae."""

from __future__ import annotations

__all__ = ["CheckpointError", "ConfigError", "DataError", "TrainingDiverged", "USER_ERRORS", "UserError"]


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback."""


class ConfigError(UserError, ValueError):
    """A configuration file or override is wrong; the message names the key."""


class DataError(UserError, ValueError):
    """The input file cannot be used as a whole (as opposed to a single rejected row)."""


class CheckpointError(UserError, ValueError):
    """The file is not a molvae checkpoint this version can read."""


class TrainingDiverged(UserError, RuntimeError):
    """The loss became NaN or Inf; no checkpoint was written for the failing step."""


# What an entry point reports in one line: our own errors, and the standard ones that library code
# raises for bad values and missing or unreadable files.
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, ValueError, FileNotFoundError, PermissionError,
                                                RuntimeError)
