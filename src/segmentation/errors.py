"""Errors a user can act on: each is shown as one line, without a traceback."""


class InputError(Exception):
    """Bad input (file, column, value or setting), refused before anything is written."""


class TrackingError(Exception):
    """The tracking store or the study storage cannot be used."""
