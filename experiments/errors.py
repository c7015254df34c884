"""The one exception type the harness raises for bad input or bad assets.

`run.py` turns it into a single ``error: ...`` line on stderr and a non-zero exit;
no run record is written.
"""


class HarnessError(Exception):
    """A user-facing error: the message names the bad value and what is accepted."""


EXIT_CODE = 2
