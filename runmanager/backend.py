"""The Keras backend: imported without TensorFlow's C++ start-up notices, and described for the record.

Importing TensorFlow 2.21 writes notices straight to the process's stderr from C++
(absl's "All log messages before absl::InitializeLog()", oneDNN, cpu_feature_guard);
``TF_CPP_MIN_LOG_LEVEL`` no longer hides them. When runmanager is the one to import
Keras (a sweep, a worker process, the ``runmanager`` command), it does so with file
descriptor 2 sent to a temporary file, and passes on every line that is not such a
notice. Set ``RUNMANAGER_BACKEND_NOTICES=1`` (``runmanager --verbose``) to see them.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["backend_name", "describe", "import_keras", "quiet_stderr"]

#: Environment variable that shows the backend's start-up notices again.
SHOW_NOTICES = "RUNMANAGER_BACKEND_NOTICES"

_NOTICE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:. ]+\d+ (port\.cc|cpu_feature_guard\.cc)[:\d]*\] .*"
    r"|To enable the following instructions: .*, in other operations, rebuild TensorFlow .*"
)


@contextmanager
def quiet_stderr(pattern: re.Pattern[str] = _NOTICE) -> Iterator[None]:
    """While the block runs, what is written to file descriptor 2 (by Python or by C++) is
    held back; afterwards every line that does not match ``pattern`` is written to stderr.

    Examples:
        with quiet_stderr():
            import tensorflow
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines(keepends=True) if not pattern.fullmatch(line.rstrip("\r\n"))]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def import_keras() -> Any:
    """``keras``, imported without the backend's start-up notices when this is the first import.

    Examples:
        keras = import_keras()
    """
    if "keras" in sys.modules or os.environ.get(SHOW_NOTICES):
        import keras
    else:
        with quiet_stderr():
            import keras
    return keras


def backend_name() -> str:
    """The name of the Keras backend of this process (``"tensorflow"``, ``"jax"``, ``"torch"``),
    without importing Keras: the imported Keras's, else what Keras would choose on import
    (``KERAS_BACKEND``, else the ``backend`` of its ``keras.json``, else TensorFlow).

    Examples:
        >>> backend_name() in ("tensorflow", "jax", "torch", "numpy", "openvino")
        True
    """
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend"):
        return str(keras.backend.backend())
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME")
    if home is None:  # where Keras itself looks
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    try:
        with open(os.path.join(os.path.expanduser(home), "keras.json"), encoding="utf-8") as file:
            config = json.load(file)
    except (OSError, ValueError):
        return "tensorflow"
    backend = config.get("backend") if isinstance(config, dict) else None
    return backend if isinstance(backend, str) and backend else "tensorflow"


def describe() -> dict[str, str] | None:
    """The Keras backend of this process and the versions of Keras and of the backend library,
    or None while Keras is not imported (nothing is imported to find out).

    Examples:
        describe()  # {'backend': 'tensorflow', 'keras': '3.15.1', 'tensorflow': '2.21.0'}
    """
    if _described:
        return dict(_described)
    keras = sys.modules.get("keras")
    if keras is None:
        return None
    name = keras.backend.backend()
    library = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch", "numpy": "numpy"}.get(name, name)
    module = sys.modules.get(library)
    info = {"backend": name, "keras": getattr(keras, "__version__", "?")}
    if module is not None:
        info[library] = getattr(module, "__version__", "?")
    _described.update(info)  # the backend of a process does not change once Keras is imported
    return info


_described: dict[str, str] = {}
