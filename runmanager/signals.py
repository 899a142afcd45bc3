"""SIGTERM handled like Ctrl-C while a sweep runs.

Schedulers and containers (SLURM preemption, ``docker stop``, Kubernetes,
``timeout``) send SIGTERM before they kill. While a sweep runs, SIGTERM raises
:class:`Terminated` in the main thread, a ``KeyboardInterrupt``, so it takes the
same path as Ctrl-C: the running runs end ``interrupted`` (their error names the
signal), workers are stopped and the exports are written. Afterwards the previous
handler is back; where it was the default one, the process then exits with the
conventional status 143 (128 + SIGTERM), otherwise the exception is raised again.

Also here: what an interrupted run's error says (:func:`interrupt_reason`,
:func:`exception_text`).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Terminated", "exception_text", "interrupt_reason", "terminate_like_interrupt"]


class Terminated(KeyboardInterrupt):
    """A terminating signal (SIGTERM) arrived during a sweep.

    Examples:
        >>> str(Terminated(signal.SIGTERM)), Terminated(signal.SIGTERM).exit_status
        ('SIGTERM', 143)
    """

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(signal.Signals(self.signum).name)

    @property
    def exit_status(self) -> int:
        """The status a shell reports for a process ended by this signal."""
        return 128 + self.signum


def interrupt_reason(exc: BaseException) -> str:
    """What an interrupted run's error says: ``"SIGTERM"``, or ``"KeyboardInterrupt"`` for Ctrl-C.

    Examples:
        >>> interrupt_reason(KeyboardInterrupt()), interrupt_reason(Terminated(signal.SIGTERM))
        ('KeyboardInterrupt', 'SIGTERM')
    """
    return str(exc) if isinstance(exc, Terminated) else "KeyboardInterrupt"


def exception_text(exc: BaseException) -> str:
    """A run's error for the exception that ended it: its type, and its message when it has one.

    Examples:
        >>> exception_text(ValueError("bad input")), exception_text(SystemExit(3)), exception_text(SystemExit())
        ('ValueError: bad input', 'SystemExit: 3', 'SystemExit')
    """
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


def install_in_worker() -> None:
    """In a worker process: SIGTERM ends the run in progress ``interrupted``, then the worker."""
    signal.signal(signal.SIGTERM, _raise_terminated)


@contextmanager
def terminate_like_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`Terminated`; the previous handler comes back after.

    Only from the main thread (Python delivers signals there), and not where SIGTERM
    is ignored on purpose. A Terminated that leaves the block becomes ``SystemExit(143)``
    when the previous handler was the default one.

    Examples:
        with terminate_like_interrupt():
            run_the_sweep()
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous == signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    except Terminated as exc:
        signal.signal(signal.SIGTERM, previous)
        if previous in (signal.SIG_DFL, None):
            raise SystemExit(exc.exit_status) from exc
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
