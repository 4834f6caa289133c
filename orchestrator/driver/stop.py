"""Stopping a sweep as Ctrl-C does, whoever asks: a SIGTERM to the driver or to its process group (a
cluster's job stop, ``timeout``, a container stop), or the driver itself when one of its writes fails
(a full disk). During Tune's run, Tune's SIGINT handler stops the trials and the driver goes on to
what comes after the run; elsewhere it is a KeyboardInterrupt.
"""
from __future__ import annotations

import signal
import threading


def as_ctrl_c(signum=None, frame=None) -> None:
    """What Ctrl-C does now; a signal handler too (SIGTERM's)."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


def sigterm_as_ctrl_c():
    """Installs ``as_ctrl_c`` for SIGTERM; returns the handler it replaced (None off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, as_ctrl_c)
