"""The errors the sparsity library raises for input it cannot work with.

Every message names the bad value and what is accepted. Callers (the harness, a notebook) decide how to show
them; the library never prints or exits.
"""


class SparsityError(ValueError):
    """A bad config value, an unsupported model or layer, a missing calibration input."""


class NotReachable(SparsityError):
    """A method cannot reach the requested model-level sparsity (CATS above its MLP share): n/a, not a crash."""
