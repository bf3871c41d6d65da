"""Errors that the CLI reports as one clear line and a non-zero exit (no traceback)."""


class GreamError(Exception):
    """A user-facing error: bad input, bad config or a failed stage precondition."""


class DataError(GreamError):
    """Invalid dataset content; the message names the file and the offending key/value."""
