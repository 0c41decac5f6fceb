"""Ctrl-C and SIGTERM while ``python -m bench`` starts: one line and the signal's exit code (130 / 143).

Start-up imports take a second or more (pandas, then torch), and a KeyboardInterrupt raised inside an
import prints a library's traceback, or is caught by it. ``guard_start`` is called by ``bench/__init__``
the moment ``python -m bench`` imports the package (before runpy compiles ``bench/__main__``), and
``bench.__main__.main`` hands the signals back (``take_over``) as soon as it can stop cleanly. Only the
interpreter's own start, before the package is imported (tens of milliseconds), is out of reach.
"""

from __future__ import annotations

import os
import signal
import sys

# no typing or collections.abc here: imported this early, each costs milliseconds of the unguarded start


def stopped_while_starting(signum: int, frame: object) -> None:
    """One line and the signal's exit code, by ``os._exit``: nothing is written yet, and no half-imported
    library may catch the signal or print it."""
    try:
        os.write(2, f"\ninterrupted by {'SIGTERM' if signum == signal.SIGTERM else 'Ctrl-C'} while starting; "
                    "nothing was run\n".encode())
    finally:  # even when stderr is closed
        os._exit(143 if signum == signal.SIGTERM else 130)


def started_as_bench() -> bool:
    """Whether this process is ``python -m bench`` (and not a test, a Ray worker or ``-m bench.other``)."""
    if sys.argv[:1] != ["-m"]:  # what runpy shows while it locates the module of ``-m``
        return False
    args = getattr(sys, "orig_argv", [])
    for i, arg in enumerate(args[1:], 1):
        if arg.startswith("-m"):
            return (arg[2:] or (args[i + 1] if i + 1 < len(args) else "")) == "bench"
    return False


def guard_start() -> None:
    """From now until ``take_over``: Ctrl-C or SIGTERM ends the process with one line."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # an ignored SIGINT stays ignored
        signal.signal(signal.SIGINT, stopped_while_starting)
    signal.signal(signal.SIGTERM, stopped_while_starting)


def take_over(on_sigterm: object) -> None:
    """Ctrl-C raises KeyboardInterrupt again and SIGTERM calls ``on_sigterm`` (a signal handler): the caller
    stops cleanly."""
    if signal.getsignal(signal.SIGINT) is stopped_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_sigterm)
