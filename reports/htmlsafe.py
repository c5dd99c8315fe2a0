"""Escaping for everything that goes into a page: text, attributes, URLs and JSON inside <script>.

Every string that comes from a run (keys, values, errors, file names, options, log lines) passes through one of
these; the page's JavaScript only ever sets such data with textContent, never innerHTML.
"""

from __future__ import annotations

import html
import json
import math
from typing import Any
from urllib.parse import quote


def esc(x: Any) -> str:
    """Text or attribute content (quotes escaped too)."""
    return html.escape("" if x is None else str(x), quote=True)


def href(rel_path: str) -> str:
    """A relative URL to a file of the run (each path segment percent-encoded), already attribute-escaped."""
    return esc("/".join(quote(seg, safe="") for seg in rel_path.split("/")))


def json_script(data: Any) -> str:
    """JSON safe to put between <script type="application/json"> tags: no `</script`, `<!--` or `]]>` can
    appear, since every <, > and & is written as a \\u escape (JSON.parse restores them)."""
    try:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:  # a NaN or infinity slipped through: JSON has no such thing, the page gets null
        text = json.dumps(_finite(data), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    # str.replace is several times faster than str.translate on a 10 MB string.
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _finite(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x
