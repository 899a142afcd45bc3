"""The journal sink: every event appended to ``journal.jsonl`` before the next one happens."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from runmanager.events import Event, SinkState, SweepEnded, SweepStarted, to_dict
from runmanager.sinks.base import Sink
from runmanager.storage import Journal, write_failure

if TYPE_CHECKING:
    from runmanager.results import RunRecord

__all__ = ["JournalSink"]


class JournalSink(Sink):
    """Appends each event to the journal, flushed (and by default fsynced) at once.

    The journal is the truth of a log_dir: the exports, TensorBoard and a resumed
    sweep are all derived from it.

    Examples:
        sink = JournalSink(Path("runs/x/journal.jsonl"))
    """

    def __init__(self, path: Path, *, durable: bool = True) -> None:
        self.journal = Journal(path, durable=durable)

    def _write(self, event: Event, record: RunRecord | None = None) -> None:
        try:
            self.journal.write(to_dict(event))
        except OSError as exc:
            raise write_failure(self.journal.path.parent, exc) from exc

    on_run_start = on_epoch_end = on_run_end = on_checkpoint = on_run_note = _write

    def on_sweep_start(self, event: SweepStarted, search: Any) -> None:
        self._write(event)

    def on_sweep_end(self, event: SweepEnded) -> None:
        self._write(event)

    def on_sink_state(self, event: SinkState) -> None:
        self._write(event)

    def close(self) -> None:
        self.journal.close()
