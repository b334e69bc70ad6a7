"""User-facing errors: each carries one line that names the problem and the fix."""


class VaeZooError(Exception):
    """A problem with the user's input; the CLI prints its message alone and exits non-zero."""


class ConfigError(VaeZooError):
    """A configuration that cannot work (wrong pairing, impossible value)."""


class DataNotFoundError(VaeZooError):
    """Dataset files are missing and could not be downloaded."""


class NonFiniteLossError(VaeZooError):
    """A non-finite loss term or gradient stopped training."""
