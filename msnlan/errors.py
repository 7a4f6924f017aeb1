"""Exceptions the suite raises for bad input; each message names the file, key or value."""


class MsnlanError(Exception):
    """Base class: an error the user can fix (bad file, bad key, bad value)."""


class ConfigError(MsnlanError, ValueError):
    """A config or variant file is invalid."""


class DataError(MsnlanError, ValueError):
    """An image or dataset is unusable."""


class CheckpointError(MsnlanError, ValueError):
    """A checkpoint does not fit what it is loaded into."""


class WriteError(MsnlanError):
    """An output could not be written (read-only folder, full disk, ...); names the path and reason."""
