"""Sinks: everything that consumes a RunManager's events, behind one small interface.

A :class:`Sink` overrides only the hooks it needs, as a Keras callback does;
:class:`SinkList` fans each event out to its sinks in order. The journal, the
exported files, the live table, TensorBoard and, in a worker process, the
channel to the driver are each one sink; :class:`MLflowSink` sends a sweep to
MLflow. A new output is one new class::

    class PrintEnds(Sink):
        def on_run_end(self, event, record):
            print(f"run {event.run}: {event.status}")

    m = RunManager("runs/x", sinks=[PrintEnds()])
"""

from __future__ import annotations

from runmanager.sinks.base import Sink, SinkList, SinkStore
from runmanager.sinks.mlflow import MLflowSink

__all__ = ["MLflowSink", "Sink", "SinkList", "SinkStore"]
