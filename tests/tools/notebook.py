"""Run the Colab notebook headlessly (nbclient), as a Colab user runs it, against any API.

Its inputs come from the environment, as in Colab: ``EDGE_API_URL``, ``CA4_API_TOKEN``,
``CA4_CA_BUNDLE`` (a stack that signs its own certificate), ``CA4_REPLAY`` (the H200 captures
instead of devices). The producer bundle is built from this checkout and served over loopback
HTTP, so the notebook's download-verify-import path (how the client reaches Colab without a
clone) runs for real. Used by tests/integration/test_notebook.py and the e2e feature.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ca4_producer.bundle import Bundle, build_bundle

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "ca4_colab_producer.ipynb"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # the base class names it `format`
        """No access log on stderr."""


@contextlib.contextmanager
def served_bundle(folder: Path) -> Iterator[tuple[str, Bundle]]:
    """The producer bundle of this checkout, at an http://127.0.0.1 URL."""
    bundle = build_bundle(folder)
    handler = functools.partial(_QuietHandler, directory=str(bundle.path.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{bundle.path.name}", bundle
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class Executed:
    """A notebook run: each code cell's printed output, and its CA4_RESULT line."""

    stdout: list[str]
    result: dict[str, Any]

    @property
    def text(self) -> str:
        """Everything the cells printed."""
        return "\n".join(self.stdout)

    @property
    def event_ids(self) -> list[str]:
        """The ids of every event the notebook had accepted (its first snapshot, then its batches)."""
        return self.result["first"]["event_ids"] + [i for b in self.result["batches"] for i in b["event_ids"]]


def execute(env: dict[str, str], workdir: Path, timeout: int = 180) -> Executed:
    """Run every cell with ``env`` added to this process's environment (the kernel inherits it)."""
    import nbformat  # noqa: PLC0415 - the `notebook` dependency group
    from nbclient import NotebookClient  # noqa: PLC0415

    settings = {
        # keep Jupyter's and IPython's state in the work folder, and its path warnings quiet
        "JUPYTER_PLATFORM_DIRS": "1",
        "JUPYTER_RUNTIME_DIR": str(workdir / "jupyter-runtime"),
        "IPYTHONDIR": str(workdir / "ipython"),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    saved = {k: os.environ.get(k) for k in {**env, **settings}}
    os.environ.update({**settings, **env})
    try:
        nb = nbformat.read(NOTEBOOK, as_version=4)
        NotebookClient(
            nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
        ).execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    nbformat.write(nb, workdir / "executed.ipynb")  # kept for reading when a check fails
    out = [
        "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == "stdout")
        for cell in nb.cells
        if cell.cell_type == "code"
    ]
    line = next((ln for ln in "\n".join(out).splitlines() if ln.startswith("CA4_RESULT ")), None)
    if line is None:
        raise AssertionError("the notebook printed no CA4_RESULT line:\n" + "\n".join(out)[-3000:])
    return Executed(out, json.loads(line.removeprefix("CA4_RESULT ")))
