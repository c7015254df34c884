"""The errors the harness reports to a user: one ``error: ...`` line on stderr, exit code 2, no record.

``HarnessError`` is the harness's own (bad config value, bad asset, unreachable hub); the sparsity library
raises ``wina.SparsityError`` for what it cannot work with. ``USER_ERRORS`` is both: the entry points catch
exactly these and print their message; anything else is a bug and keeps its traceback.
"""

from wina.errors import SparsityError


class HarnessError(Exception):
    """A user-facing error: the message names the bad value and what is accepted."""


USER_ERRORS = (HarnessError, SparsityError)
EXIT_CODE = 2
