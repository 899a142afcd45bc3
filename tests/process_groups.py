"""Ending what a test started in a session of its own (``start_new_session=True``): a server, a
node, a daemon, with every process it started and nothing else."""

from __future__ import annotations

import os
import signal
import subprocess


def end_group(proc: subprocess.Popen, grace: float = 3) -> None:
    """End the process group of ``proc`` and nothing else: SIGTERM, then SIGKILL to what is left
    after ``grace`` s (0: SIGKILL at once). A group already gone is left alone.

    A ``ray start --block`` node, for one: SIGTERM ends the GCS and raylet at once, but the
    command itself then "drains" for 30 s; the others get a moment to shut down cleanly, then
    what is left is killed."""
    try:
        if grace:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                pass
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    proc.wait(timeout=20)
