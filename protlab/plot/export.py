"""Figures: every figure is saved as interactive HTML and as PNG as well as shown.

PNG export of plotly figures goes through kaleido (``pip install 'protlab[png]'``), which
needs a Chrome/Chromium on the machine (``apt-get install chromium``). Where either is
missing, or kaleido fails or does not answer within ``PROTLAB_PNG_TIMEOUT`` seconds (default
120; kaleido is known to hang now and then), the PNG is drawn with matplotlib from the
figure's data instead, a message says so once, and the process does not wait on kaleido again.
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path

import numpy as np

from protlab.core.atomic import atomic_path
from protlab.core.extras import has_module, install_hint
from protlab.plot.assets import plotly_bundle

log = logging.getLogger(__name__)
# choreographer (kaleido's Chromium driver) logs a full traceback for each message from Chromium
# it cannot decode and then ignores it (seen on busy machines); in a notebook that reads as a
# failure. Export failures are reported here instead (a warning and the matplotlib fallback).
logging.getLogger("choreographer").setLevel(logging.CRITICAL)
_warned = False
_kaleido_hung = False


def find_chromium() -> str | None:
    """The path of a Chrome/Chromium executable on PATH, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def save_figure(fig, stem: str | Path, *, width: int = 900, height: int = 600) -> dict[str, Path]:
    """Save a plotly or matplotlib figure as ``stem.html`` (plotly only) and ``stem.png``.

    The HTML loads ``plotly.min.js`` from the same folder (written once), so it works offline.

    Returns the paths written. The PNG falls back to matplotlib when kaleido cannot run.
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    if hasattr(fig, "savefig"):  # matplotlib
        with atomic_path(stem.with_suffix(".png")) as tmp:
            fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
        out["png"] = stem.with_suffix(".png")
        return out
    cdn = bool(os.environ.get("PROTLAB_PLOTLY_CDN"))
    if not cdn:  # checked and written atomically here: plotly's own copy is neither
        plotly_bundle(stem.parent)
    with atomic_path(stem.with_suffix(".html")) as tmp:
        # One plotly.min.js per folder (offline, and small when many figures share a folder).
        fig.write_html(tmp, include_plotlyjs="cdn" if cdn else "directory",
                       div_id=stem.name)  # a fixed id keeps regenerated figures byte-identical
    out["html"] = stem.with_suffix(".html")
    out["png"] = _plotly_png(fig, stem.with_suffix(".png"), width, height)
    return out


def png_timeout() -> float:
    """Seconds a plotly PNG export may take (``PROTLAB_PNG_TIMEOUT``, default 120)."""
    return float(os.environ.get("PROTLAB_PNG_TIMEOUT", "120"))


def _kaleido_png(fig, path: Path, width: int, height: int, timeout: float) -> None:
    """``fig.to_image`` in a daemon thread, waited on for ``timeout`` seconds: a hung export
    leaves that thread behind instead of the caller."""
    outcome: dict = {}

    def export():
        try:
            outcome["png"] = fig.to_image(format="png", width=width, height=height)
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc

    worker = threading.Thread(target=export, name="protlab-kaleido", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TimeoutError(f"no answer in {timeout:g} s (PROTLAB_PNG_TIMEOUT)")
    if "error" in outcome:
        raise outcome["error"]
    with atomic_path(path) as tmp:
        tmp.write_bytes(outcome["png"])


def _plotly_png(fig, path: Path, width: int, height: int) -> Path:
    global _warned, _kaleido_hung
    browser = find_chromium()
    if _kaleido_hung:
        reason = "kaleido stopped answering earlier in this process"
    elif not has_module("kaleido"):  # an optional extra: PNGs still come, from matplotlib
        reason = f"kaleido is not installed ({install_hint('png')})"
    elif browser:
        os.environ.setdefault("BROWSER_PATH", browser)
        try:
            _kaleido_png(fig, path, width, height, png_timeout())
            return path
        except TimeoutError as exc:
            _kaleido_hung = True
            _warned = False  # say this one even when a milder reason was said before
            reason = f"kaleido hung ({exc})"
        except Exception as exc:  # kaleido failures are many and library-specific
            reason = f"kaleido failed ({type(exc).__name__}: {str(exc)[:200]})"
    else:
        reason = "no Chromium found (apt-get install chromium)"
    if not _warned:  # not a warning in every notebook: `make demo` and the README say it once
        (log.warning if _kaleido_hung else log.info)(
            "plotly PNG export unavailable: %s; drawing PNGs with matplotlib instead", reason)
        _warned = True
    return _matplotlib_png(fig, path, width, height)


def _colour(value):
    """A plotly colour matplotlib can draw (a single named or hex colour), else None."""
    return value if isinstance(value, str) and not value.startswith("rgb") else None


def _matplotlib_png(fig, path: Path, width: int, height: int) -> Path:
    """A faithful-enough static PNG of a plotly figure's traces, drawn with matplotlib."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    mfig, ax = plt.subplots(figsize=(width / 100, height / 100), dpi=100)
    for trace in fig.data:
        kind = trace.type
        name = getattr(trace, "name", None)
        if kind in ("scatter", "scattergl"):
            x = np.asarray(trace.x if trace.x is not None else [])
            y = np.asarray(trace.y if trace.y is not None else [])
            mode = trace.mode or "markers"
            if "lines" in mode:
                ax.plot(x, y, label=name, color=_colour(trace.line.color))
            else:  # the figure's own colours: a protein's line and its site stars match
                star = trace.marker.symbol == "star"
                ax.scatter(x, y, s=40 if star else 6, marker="*" if star else "o", label=name,
                           color=_colour(trace.marker.color))
        elif kind == "bar":
            ticks = [str(v) for v in trace.x]  # positions, not strings: no categorical-units chatter
            ax.bar(range(len(ticks)), trace.y, label=name)
            ax.set_xticks(range(len(ticks)), ticks, rotation=90 if len(ticks) > 20 else 0,
                          fontsize=6 if len(ticks) > 20 else None)
        elif kind == "histogram":
            ax.hist(np.asarray(trace.x, dtype=float), bins=40, label=name, alpha=0.7)
        elif kind == "heatmap":
            image = ax.imshow(np.asarray(trace.z, dtype=float), aspect="auto", cmap="viridis")
            for values, set_ticks in ((trace.x, ax.set_xticks), (trace.y, ax.set_yticks)):
                if values is not None and len(values) <= 40:  # family and cluster names
                    set_ticks(range(len(values)), [str(v) for v in values], fontsize=7)
            bar = mfig.colorbar(image, ax=ax)
            if trace.colorbar.title.text:
                bar.set_label(trace.colorbar.title.text.replace("<br>", " "))
    for shape in fig.layout.shapes or ():  # threshold lines (add_hline)
        if shape.type == "line" and shape.y0 == shape.y1 and shape.y0 is not None:
            ax.axhline(shape.y0, linestyle=":", color=_colour(shape.line.color) or "black")
    for axis, set_scale in ((fig.layout.xaxis, ax.set_xscale), (fig.layout.yaxis, ax.set_yscale)):
        if axis and axis.type == "log":
            set_scale("log")
    title = fig.layout.title.text if fig.layout.title and fig.layout.title.text else ""
    ax.set_title(title)
    if fig.layout.xaxis and fig.layout.xaxis.title and fig.layout.xaxis.title.text:
        ax.set_xlabel(fig.layout.xaxis.title.text)
    if fig.layout.yaxis and fig.layout.yaxis.title and fig.layout.yaxis.title.text:
        ax.set_ylabel(fig.layout.yaxis.title.text)
    handles, labels = ax.get_legend_handles_labels()
    if 0 < len(labels) <= 30:
        ax.legend(fontsize=6, markerscale=2, loc="best")
    with atomic_path(path) as tmp:
        mfig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(mfig)
    return path
