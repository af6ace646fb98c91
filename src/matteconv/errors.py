"""One exception type for every user-facing failure: the CLI prints its message as one line and exits 2."""


class MatteconvError(Exception):
    """A problem with the user's input or environment, described in one line (file and cause)."""
