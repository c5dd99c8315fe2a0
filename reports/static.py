"""plotly.js, shipped once per store rather than once per report.

plotly.min.js is ~4.8 MB: inlined, it would be most of every small report and 100 runs would carry 480 MB of the
same file. So `ensure_plotly(store)` copies it from the installed plotly package to
`store/_static/plotly-<version>.min.js` (once; versioned so reports rendered by another plotly keep working) and a
report refers to it by a relative path (`../../_static/...` from `store/<test>/<timestamp>/report.html`), which
works from the file system and from `harness serve` alike. A zip of a run from `harness serve` carries the file
along at the same relative place. `render_run(..., inline_plotly=True)` inlines it instead, for a report that must
travel alone.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

STATIC_DIR = "_static"


def plotly_version() -> str:
    from plotly.offline import get_plotlyjs_version

    return str(get_plotlyjs_version())


def plotly_name() -> str:
    return f"plotly-{plotly_version()}.min.js"


def plotly_source() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def plotly_js() -> str:
    return plotly_source().read_text(encoding="utf-8")


def ensure_plotly(store: Path) -> Path:
    """Make sure store/_static/plotly-<version>.min.js exists (written atomically); return its path."""
    target = store / STATIC_DIR / plotly_name()
    if target.is_file() and target.stat().st_size == plotly_source().stat().st_size:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".plotly-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(plotly_source().read_bytes())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
