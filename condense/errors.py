"""Errors that mean "the user asked for something that does not exist".

Entry points print ``str(err)`` as one line and exit with status 2; library code only raises.
"""


class ConfigError(ValueError):
    """Bad user input: an unknown name, an out-of-range value, a malformed file."""


class DataNotFoundError(ConfigError):
    """A dataset's files are not where the data root says."""


def unknown(kind: str, value, allowed) -> ConfigError:
    """The one-line error for a name that is not in a registry."""
    return ConfigError(f"unknown {kind} {value!r}; allowed: {', '.join(map(str, allowed))}")
