"""The sink of a worker process: its run's events go to the driver, which alone writes files."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from runmanager.events import Event
from runmanager.sinks.base import Sink

if TYPE_CHECKING:
    from runmanager.results import RunRecord

__all__ = ["ForwardSink"]


class ForwardSink(Sink):
    """Sends every run event, as it is, through ``send`` (a queue's ``put``, a Ray queue).

    Examples:
        manager.add_sink(ForwardSink(events.put))
    """

    def __init__(self, send: Callable[[Event], None]) -> None:
        self.send = send

    def _forward(self, event: Event, record: RunRecord) -> None:
        self.send(event)

    on_run_start = on_epoch_end = on_run_end = on_checkpoint = on_run_note = _forward
