"""How every benchmark script reports: its result as JSON on stdout, and the same text in a file."""

from __future__ import annotations

import json
from pathlib import Path


def emit(result: dict, path: str | None = None, indent: int = 2) -> None:
    """Print ``result`` as indented JSON; with ``path``, write the same text there too."""
    text = json.dumps(result, indent=indent)
    print(text)
    if path:
        Path(path).write_text(text + "\n")
