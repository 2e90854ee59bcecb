"""The one exception type that means "the user asked for something we cannot do".

The CLI prints a GanzooError as one line and exits 1; anything else is a bug and gets a
one-line summary (a traceback only with --debug).
"""


class GanzooError(Exception):
    """A user-facing error: bad input, a missing file, an unusable checkpoint."""


class DiskFull(GanzooError):
    """A write failed because the disk (or the user's quota) is full; the message names the
    path and where to make room (callers with a fallback, the data cache, catch it)."""
