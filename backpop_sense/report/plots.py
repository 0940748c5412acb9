"""The report's plots: matplotlib figures made without pyplot (so no window, no global figure
list to close, safe in any thread) and saved with the Agg/SVG renderers to ``data:`` URIs that
the HTML embeds, so a report opens from disk with no request to any other file or host.

Longitudinal plots are SVG (few marks, sharp at any zoom); plots with many points (angle
traces at 10 Hz, spectrograms) are PNG, whose size does not grow with the data.
Every axis says its unit.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib as mpl
import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from ..levels import level_index
from ..vocab import AXES

STYLE = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
    # Text stays text in SVG (not glyph outlines): a quarter of the size, and searchable.
    "svg.fonttype": "none",
    # Same plot, same bytes: no random ids or dates in the SVG.
    "svg.hashsalt": "backpop-sense",
}
KIND_COLOURS = {"cavitation": "#1f77b4", "snap": "#ff7f0e", "readjustment": "#2ca02c",
                "unknown": "#7f7f7f"}
KIND_MARKERS = {"cavitation": "o", "snap": "s", "readjustment": "^", "unknown": "x"}
CONTEXT_COLOURS = {"twist": "#9467bd", "stretch": "#d62728", "bend": "#8c564b",
                   "walk": "#17becf", "static": "#c7c7c7", "other": "#bcbd22",
                   "unknown": "#7f7f7f"}
AXIS_WORDS = {"flexion": "flexion (+ forward)", "lateral": "side bend (+ right)",
              "twist": "twist (+ shoulders left)"}
WIDTH_IN = 10.0
MARGIN_IN = {"left": 1.45, "right": 2.0, "bottom": 0.5, "top": 0.25, "between": 0.3}
"""Room for tick labels and axis labels (left: "trauma (reported)"), legends (right), and
subplot titles (between), inches."""


_styled = mpl.rc_context(STYLE)
"""Decorates each plotting function: every artist it makes takes the report's style (most
settings are read when an artist is made, some, like ``svg.*``, when the figure is saved)."""


def data_uri(fig: Figure, fmt: str = "svg", *, dpi: float = 100.0) -> str:
    """A figure as a ``data:`` URI (``svg`` or ``png``), for an ``<img src>``.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from backpop_sense.report.plots import data_uri
    >>> data_uri(Figure()).startswith("data:image/svg+xml;base64,")
    True
    """
    buffer = io.BytesIO()
    with mpl.rc_context(STYLE):
        fig.savefig(buffer, format=fmt, dpi=dpi,
                    metadata={"Date": None} if fmt == "svg" else None)
    kind = "svg+xml" if fmt == "svg" else fmt
    return f"data:image/{kind};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def _figure(height_in: float, rows: int = 1) -> tuple[Figure, list[Axes]]:
    """A figure of ``rows`` axes sharing x, with the same margins in inches as every other:
    the time axes of one report line up from plot to plot (and no layout engine has to
    measure every label first, which doubled the drawing time)."""
    fig = Figure(figsize=(WIDTH_IN, height_in))
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    fig.subplots_adjust(left=MARGIN_IN["left"] / WIDTH_IN,
                        right=1.0 - MARGIN_IN["right"] / WIDTH_IN,
                        bottom=MARGIN_IN["bottom"] / height_in,
                        top=1.0 - MARGIN_IN["top"] / height_in,
                        hspace=MARGIN_IN["between"] * rows / (height_in - MARGIN_IN["top"]
                                                              - MARGIN_IN["bottom"]))
    return fig, list(axes)


def _naive(times: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """UTC times as naive datetime64, which matplotlib plots without a time zone lookup."""
    index = pd.DatetimeIndex(times)
    return (index.tz_convert("UTC").tz_localize(None) if index.tz is not None
            else index).to_numpy()


def _date_axis(ax: Axes, period: tuple[pd.Timestamp, pd.Timestamp]) -> None:
    locator = mdates.AutoDateLocator(minticks=3, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlim(*_naive(pd.DatetimeIndex(period)))


def _day_bars(ax: Axes, days: pd.Series | pd.DatetimeIndex, heights: np.ndarray,
              bottoms: np.ndarray, colour: str, label: str) -> None:
    """One bar per UTC day (80 % of the day wide), drawn as one collection: a hundred days
    of ``ax.bar`` are a hundred artists, each slow to lay out and to write."""
    left = mdates.date2num(_naive(days)) + 0.1
    verts = np.stack([np.column_stack([left, bottoms]), np.column_stack([left, bottoms + heights]),
                      np.column_stack([left + 0.8, bottoms + heights]),
                      np.column_stack([left + 0.8, bottoms])], axis=1)
    bars = PolyCollection(verts, facecolors=colour, edgecolors="none", label=label)
    # As ax.bar does: the y axis starts at the bars' foot, not a margin below it.
    bars.sticky_edges.y.append(0.0)
    ax.add_collection(bars)
    ax.autoscale_view()


def _stacked_days(ax: Axes, table: pd.DataFrame, by: str, colours: Mapping[str, str]) -> None:
    counts = table.pivot_table(index="date", columns=by, values="pops", aggfunc="sum",
                               fill_value=0)
    bottom = np.zeros(len(counts))
    for name in colours:
        if name in counts:
            _day_bars(ax, counts.index, counts[name].to_numpy(float), bottom, colours[name],
                      name)
            bottom = bottom + counts[name].to_numpy()
    ax.legend(title=by.replace("level", "spinal level"), loc="upper left",
              bbox_to_anchor=(1.0, 1.0), fontsize=8)


@_styled
def pops_per_day(table: pd.DataFrame, period: tuple[pd.Timestamp, pd.Timestamp]) -> Figure:
    """Pops per UTC day, stacked by spinal level (top) and by kind (bottom).

    Parameters
    ----------
    table : DataFrame
        ``date`` (UTC day), ``level``, ``kind``, ``pops`` (count), as
        :func:`~backpop_sense.report.tables.subject_tables` gives ``pops_per_day``.
    period : (Timestamp, Timestamp)
        The x-axis range (UTC).
    """
    fig, (by_level, by_kind) = _figure(4.2, 2)
    levels = sorted(set(table["level"]), key=level_index)
    cmap = mpl.colormaps["viridis"]
    shades = {lv: mpl.colors.to_hex(cmap(i / max(1, len(levels) - 1) * 0.9))
              for i, lv in enumerate(levels)}
    _stacked_days(by_level, table, "level", shades)
    _stacked_days(by_kind, table, "kind", KIND_COLOURS)
    for ax in (by_level, by_kind):
        ax.set_ylabel("pops per day (count)")
        ax.yaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
    by_level.set_title("by spinal level", loc="left", fontsize=9)
    by_kind.set_title("by kind", loc="left", fontsize=9)
    by_kind.set_xlabel("date (UTC)")
    _date_axis(by_kind, period)
    return fig


@_styled
def pops_by_context(table: pd.DataFrame) -> Figure:
    """Pops per minute spent in each motion context, each bar labelled with its counts.

    Parameters
    ----------
    table : DataFrame
        ``context``, ``pops`` (count), ``minutes`` (time spent in it), ``pops_per_minute``.
    """
    rows = table[table["minutes"] > 0].iloc[::-1]
    fig, (ax,) = _figure(0.35 * len(rows) + 0.9)
    ax.barh(rows["context"], rows["pops_per_minute"],
            color=[CONTEXT_COLOURS.get(c, "#7f7f7f") for c in rows["context"]])
    for y, r in enumerate(rows.itertuples()):
        ax.annotate(f" {r.pops} pops in {r.minutes:.1f} min", (r.pops_per_minute, y),
                    va="center", fontsize=8)
    ax.set_xlabel("pops per minute spent in that movement (1/min)")
    ax.set_xlim(0, max(float(rows["pops_per_minute"].max()), 1e-9) * 1.35)
    ax.grid(axis="y", visible=False)
    return fig


@_styled
def range_of_motion(table: pd.DataFrame, period: tuple[pd.Timestamp, pd.Timestamp]) -> Figure:
    """Each axis's range per session against the subject's own baseline.

    Parameters
    ----------
    table : DataFrame
        Per session and axis: ``start``, ``axis``, ``range_deg`` (5th-95th percentile),
        ``baseline_deg``, ``restricted_below_deg``, ``restricted`` (bool).
    period : (Timestamp, Timestamp)
        The x-axis range (UTC).
    """
    fig, axes = _figure(5.0, len(AXES))
    for ax, axis in zip(axes, AXES, strict=True):
        rows = table[table["axis"] == axis]
        x = _naive(rows["start"])
        ax.plot(x, rows["range_deg"], "o-", color="#1f77b4", label="this session")
        ax.step(x, rows["baseline_deg"], where="post", ls="--", color="#444444",
                label="own baseline")
        ax.step(x, rows["restricted_below_deg"], where="post", ls=":", color="#d62728",
                label="restricted below")
        low = rows[rows["restricted"]]
        ax.plot(_naive(low["start"]), low["range_deg"], "o", ms=9, mfc="none",
                color="#d62728", label="restricted")
        ax.set_ylabel(f"{AXIS_WORDS[axis].split(' (')[0]} range (deg)")
        ax.set_ylim(bottom=0)
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    axes[-1].set_xlabel("session date (UTC)")
    _date_axis(axes[-1], period)
    return fig


@_styled
def pain_with_pops(diary: pd.DataFrame, days: pd.DataFrame,
                   period: tuple[pd.Timestamp, pd.Timestamp]) -> Figure:
    """Diary pain and stiffness (0-10) over time, pops per day as bars behind them.

    Parameters
    ----------
    diary : DataFrame
        ``time`` (UTC), ``pain``, ``stiffness`` (0-10).
    days : DataFrame
        ``date`` (UTC day), ``pops`` (count).
    period : (Timestamp, Timestamp)
        The x-axis range (UTC).
    """
    fig, (ax,) = _figure(2.8)
    bars = ax.twinx()
    _day_bars(bars, days["date"], days["pops"].to_numpy(float), np.zeros(len(days)),
              "#cccccc", "pops per day")
    bars.set_ylabel("pops per day (count)")
    bars.yaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
    bars.grid(False)
    bars.spines["right"].set_visible(True)
    # The scores are drawn over the bars: the scores' axes go in front, with a clear patch.
    ax.set_zorder(bars.get_zorder() + 1)
    ax.patch.set_visible(False)
    x = _naive(diary["time"])
    ax.plot(x, diary["pain"], "o-", ms=3, color="#d62728", label="pain")
    ax.plot(x, diary["stiffness"], "s--", ms=3, color="#1f77b4", label="stiffness")
    ax.set_ylim(0, 10.5)
    ax.set_ylabel("reported score (0-10)")
    ax.set_xlabel("date (UTC)")
    handles = ax.get_legend_handles_labels()
    extra = bars.get_legend_handles_labels()
    ax.legend(handles[0] + extra[0], handles[1] + extra[1], loc="upper left", ncols=3,
              fontsize=8)
    _date_axis(ax, period)
    return fig


@_styled
def catches_and_falls(events: pd.DataFrame, period: tuple[pd.Timestamp, pd.Timestamp]
                      ) -> Figure:
    """Measured catches and falls, and reported trauma, on one time line.

    Parameters
    ----------
    events : DataFrame
        ``time`` (UTC) and ``what`` (the row's label).
    period : (Timestamp, Timestamp)
        The x-axis range (UTC).
    """
    labels = list(dict.fromkeys(events["what"]))
    fig, (ax,) = _figure(0.4 * len(labels) + 0.9)
    markers = {"catch (measured)": ("#ff7f0e", "D"), "fall (measured)": ("#d62728", "v"),
               "trauma (reported)": ("#9467bd", "*")}
    for y, label in enumerate(labels):
        colour, marker = markers[label]
        ax.plot(_naive(events.loc[events["what"] == label, "time"]),
                np.full(int((events["what"] == label).sum()), y), marker, ms=9,
                color=colour, ls="none")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(-0.6, len(labels) - 0.4)
    ax.set_xlabel("date (UTC)")
    ax.grid(axis="y", visible=False)
    _date_axis(ax, period)
    return fig


@_styled
def angle_traces(frames: pd.DataFrame, pops: pd.DataFrame) -> Figure:
    """Spine angles over a session, motion contexts shaded, pops marked by kind.

    Parameters
    ----------
    frames : DataFrame
        ``t`` (s since session start), ``flexion_deg``, ``lateral_deg``, ``twist_deg``,
        ``context`` at 10 Hz.
    pops : DataFrame
        ``t`` (s), ``kind`` and the angles at each pop (degrees).
    """
    fig, axes = _figure(6.0, len(AXES))
    t = frames["t"].to_numpy(float)
    minutes = t[-1] > 600 if len(t) else False
    scale = 60.0 if minutes else 1.0
    for ax, axis in zip(axes, AXES, strict=True):
        ax.plot(t / scale, frames[f"{axis}_deg"], lw=0.8, color="#333333")
        for context in ("twist", "stretch", "bend", "walk"):
            inside = (frames["context"] == context).to_numpy()
            if inside.any():
                ax.fill_between(t / scale, 0, 1, where=inside, step="mid", alpha=0.15,
                                color=CONTEXT_COLOURS[context], lw=0,
                                transform=ax.get_xaxis_transform(),
                                label=context if axis == AXES[0] else None)
        for kind, group in pops.groupby("kind"):
            ax.plot(group["t"] / scale, group[f"{axis}_deg"], KIND_MARKERS.get(kind, "x"),
                    ls="none", color=KIND_COLOURS.get(kind, "#000000"), ms=6,
                    label=f"pop: {kind}" if axis == AXES[0] else None)
        ax.set_ylabel(f"{AXIS_WORDS[axis]} (deg)")
    if axes[0].get_legend_handles_labels()[0]:  # a still session without pops has none
        axes[0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    axes[-1].set_xlabel("time since session start (min)" if minutes
                        else "time since session start (s)")
    return fig


@dataclass(frozen=True)
class Snippet:
    """Audio around one pop, from the mic nearest its level.

    Attributes
    ----------
    title : str
        What the pop was (time, level, kind).
    audio : ndarray
        Samples, full scale = 1.
    sr : int
        Sample rate, Hz.
    start_s : float
        Time of the first sample relative to the pop's onset, seconds (negative: before).
    """

    title: str
    audio: np.ndarray
    sr: int
    start_s: float


@_styled
def pop_snippets(snippets: Sequence[Snippet]) -> Figure:
    """Waveform (top) and spectrogram (bottom) around each pop, one column per pop.

    The onset is at 0 ms. Spectrograms share one colour scale: power spectral density in dB
    relative to full scale squared per Hz, the 70 dB below the loudest cell shown.
    """
    # Only session reports draw spectrograms: the subject report need not import scipy.signal.
    from scipy import signal

    spectra = []
    for snip in snippets:
        nperseg = min(256, len(snip.audio))
        f, ts, sxx = signal.spectrogram(snip.audio, fs=snip.sr, nperseg=nperseg,
                                        noverlap=nperseg * 7 // 8)
        spectra.append((f, ts, 10.0 * np.log10(sxx + 1e-20)))
    top = max(float(db.max()) for _, _, db in spectra)
    fig = Figure(figsize=(WIDTH_IN, 4.2), layout="constrained")
    grid = fig.subplots(2, len(snippets), squeeze=False, sharex="col", sharey="row")
    for k, (snip, (f, ts, db)) in enumerate(zip(snippets, spectra, strict=True)):
        wave, spec = grid[0, k], grid[1, k]
        t_ms = (snip.start_s + np.arange(len(snip.audio)) / snip.sr) * 1000.0
        wave.plot(t_ms, snip.audio, lw=0.6, color="#333333")
        wave.axvline(0.0, color="#d62728", lw=0.8)
        wave.set_title(snip.title, fontsize=8)
        image = spec.pcolormesh((snip.start_s + ts) * 1000.0, f / 1000.0, db, shading="auto",
                                cmap="magma", vmin=top - 70.0, vmax=top)
        spec.set_xlabel("time from onset (ms)")
        spec.grid(False)
    grid[0, 0].set_ylabel("amplitude (full scale)")
    grid[1, 0].set_ylabel("frequency (kHz)")
    fig.colorbar(image, ax=grid[1, :].tolist(), label="PSD (dB re FS\u00b2/Hz)")
    return fig
