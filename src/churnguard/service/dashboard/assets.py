"""Static files of the dashboard: its own script and style sheet, and Plotly's bundle.

Each file is served under a name that carries a digest of its content (Plotly's: its version), so
browsers may keep it for a year and a new release still reaches them at once. Plotly's bundle
(about 5 MB) comes from the installed ``plotly`` package, compressed once on first use.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

STATIC_PREFIX = "/dashboard/static"
LONG_CACHE = "public, max-age=31536000, immutable"


@dataclass(frozen=True, kw_only=True)
class Asset:
    name: str  # the name in the URL
    media_type: str
    body: bytes


class Assets:
    """The dashboard's files by URL name; Plotly's is read (and gzipped) on first request."""

    def __init__(self) -> None:
        own = resources.files("churnguard.service.dashboard") / "static"
        self._files: dict[str, Asset] = {}
        self.urls: dict[str, str] = {}
        for filename, media_type in (("dashboard.js", "text/javascript; charset=utf-8"),
                                     ("dashboard.css", "text/css; charset=utf-8")):
            body = (own / filename).read_bytes()
            stem, ext = filename.rsplit(".", 1)
            name = f"{stem}.{hashlib.sha256(body).hexdigest()[:12]}.{ext}"
            self._files[name] = Asset(name=name, media_type=media_type, body=body)
            self.urls[filename] = f"{STATIC_PREFIX}/{name}"
        self._plotly_path, version = _plotly_bundle()
        self._plotly_name = f"plotly-{version}.min.js"
        self.urls["plotly.min.js"] = f"{STATIC_PREFIX}/{self._plotly_name}"
        self._plotly: tuple[bytes, bytes] | None = None
        self._lock = threading.Lock()

    def get(self, name: str, *, gzip_ok: bool) -> tuple[Asset, bool] | None:
        """The asset and whether its body is gzip-compressed; None for an unknown name."""
        if name in self._files:
            return self._files[name], False
        if name != self._plotly_name:
            return None
        with self._lock:
            if self._plotly is None:
                raw = self._plotly_path.read_bytes()
                self._plotly = (raw, gzip.compress(raw, compresslevel=6, mtime=0))
        raw, packed = self._plotly
        return Asset(name=name, media_type="text/javascript; charset=utf-8",
                     body=packed if gzip_ok else raw), gzip_ok


def _plotly_bundle() -> tuple[Path, str]:
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise RuntimeError(f"plotly's bundled plotly.min.js is missing ({path}); reinstall the "
                           "plotly package")
    return path, plotly.__version__
