"""Errors that mean "the user asked for something that does not exist".

Entry points print ``str(err)`` as one line and exit with status 2; library code only raises.
A bad flag is such an input too: every entry point parses with ``OneLineParser``.
"""
import argparse
import sys


class ConfigError(ValueError):
    """Bad user input: an unknown name, an out-of-range value, a malformed file."""


class DataNotFoundError(ConfigError):
    """A dataset's files are not where the data root says."""


def one_line(err: BaseException, limit: int = 1000) -> str:
    """``str(err)`` as one bounded line, as entry points print it."""
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def error_line(err) -> str:
    """An exception on one line with its type: the user's exception, not the wrapper (Ray's) around it."""
    cause = getattr(err, "cause", None) or err
    text = " ".join(str(cause).split())
    line = f"{type(cause).__name__}: {text}" if text else type(cause).__name__
    return line if len(line) <= 300 else line[:297] + "..."


class OneLineParser(argparse.ArgumentParser):
    """argparse, whose refusal of a flag is one line and exit 2, as every other bad input (argparse
    itself prints the usage first)."""

    def error(self, message):
        self.exit(2, f"error: {message}\n")


def unknown(kind: str, value, allowed) -> ConfigError:
    """The one-line error for a name that is not in a registry."""
    return ConfigError(f"unknown {kind} {value!r}; allowed: {', '.join(map(str, allowed))}")


class NonFiniteLossError(RuntimeError):
    """A loss turned nan or infinite: the run diverged (a learning rate too large, say). Its numbers
    are not results; the message names where it happened."""


def exit_status(work) -> int:
    """Run an entry point's ``work()``: 0; bad input is one line on stderr and 2; a run that diverged
    (it has no result to report) is one line and 1."""
    try:
        work()
    except ConfigError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 1
    return 0
