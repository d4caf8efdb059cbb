"""The one exception type users see: a mistake in their input, reported as one line."""


class UserError(Exception):
    """Bad input (wrong shape, missing file, eps out of range, ...).

    The CLI prints ``error: <message>`` and exits with status 2, no traceback.
    The message says what is wrong *and* how to fix it.
    """
