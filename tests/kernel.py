"""A real Jupyter kernel for the tests: ipykernel started by jupyter_client, as a notebook server
starts one, with cells executed one by one and every output message they produced kept, as a
notebook front end receives them."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Cell:
    """What executing one cell produced: its output messages (iopub) and its reply."""

    outputs: list[dict[str, Any]] = field(default_factory=list)
    reply: dict[str, Any] = field(default_factory=dict)

    @property
    def shown(self) -> list[dict[str, Any]]:
        """The data bundles the front end renders: displays, their updates, and the cell's result."""
        kinds = ("display_data", "update_display_data", "execute_result")
        return [m["content"]["data"] for m in self.outputs if m["msg_type"] in kinds]

    @property
    def text(self) -> str:
        """Everything a person reads: printed streams and the plain text of what is shown."""
        parts = [m["content"]["text"] for m in self.outputs if m["msg_type"] == "stream"]
        parts += [data["text/plain"] for data in self.shown if "text/plain" in data]
        return "\n".join(parts)

    @property
    def error(self) -> str | None:
        """``ExceptionName: message`` when the cell raised, else None."""
        content = self.reply.get("content", {})
        return f"{content['ename']}: {content['evalue']}" if content.get("status") == "error" else None


class Kernel:
    """An IPython kernel in a process of its own, running this interpreter with this environment
    (``PYTHONPATH`` included, so it imports the runmanager under test), without a kernelspec
    installed anywhere, and without ``MPLBACKEND``: a kernel as plain as a user's.

    Examples:
        kernel = Kernel(tmp_path)
        assert kernel.run("1 + 1").shown[0]["text/plain"] == "2"
        kernel.close()
    """

    def __init__(self, cwd: Path) -> None:
        from jupyter_client import KernelManager
        from jupyter_client.kernelspec import KernelSpecManager

        specs = cwd / "kernelspecs"
        (specs / "runmanager-test").mkdir(parents=True, exist_ok=True)
        (specs / "runmanager-test" / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "runmanager test", "language": "python"}))
        env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
        self.manager = KernelManager(kernel_name="runmanager-test",
                                     kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(specs)]),
                                     transport="ipc", ip=str(cwd / "kernel-ipc"))
        self.manager.start_kernel(env=env, cwd=str(cwd))
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=120)

    def run(self, code: str, timeout: float = 240) -> Cell:
        """Execute ``code`` as one cell and wait for it to finish."""
        cell = Cell()
        cell.reply = self.client.execute_interactive(code, timeout=timeout, output_hook=cell.outputs.append)
        return cell

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)
