"""Matplotlib views of hashed features and of gateway usage.

Every function takes ``ax=None`` (draws on new axes when none are given), returns the
Axes (or the Figure, for views made of several panels) and never calls ``plt.show()``.

=====================  ==============================================================
:func:`hashed_heatmap`  rows x buckets of hashed feature counts, rows labelled by text
:func:`hashed_diff`     two hashed outputs of the same rows side by side, mismatches boxed
:func:`collision_curve` share of distinct n-grams that share a bucket, against bitsize
:func:`usage_dashboard` gateway calls over time by outcome, and latency
=====================  ==============================================================

The numbers behind two of the views are available without drawing:
:func:`collision_rates` and :func:`usage_timeline`.

Examples
--------
>>> import azml_nb as az
>>> from azml_nb import plots
>>> df = az.datasets.book_reviews().head(8)                          # doctest: +SKIP
>>> hashed = az.feature_hashing(df, ["Col2"], bitsize=4)             # doctest: +SKIP
>>> ax = plots.hashed_heatmap(hashed, labels=df["Col2"])             # doctest: +SKIP
"""
from __future__ import annotations

import logging
import re
from typing import Iterable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

__all__ = [
    "hashed_heatmap",
    "hashed_diff",
    "mismatches",
    "collision_rates",
    "collision_curve",
    "usage_timeline",
    "usage_dashboard",
    "MISMATCH_GID",
]

log = logging.getLogger(__name__)

#: ``gid`` of the rectangles :func:`hashed_diff` draws around mismatching cells
MISMATCH_GID = "mismatch"

_FEATURE = re.compile(r"_HashingFeature\.(\d+)$")
_OUTCOME_COLORS = {"success": "#2a9d5c", "blocked": "#f0a030", "failed": "#d03a2f"}
_MAX_ANNOTATED_CELLS = 400


# --- hashed counts -----------------------------------------------------------------------

def _counts(hashed, what: str) -> tuple[np.ndarray, list[str], pd.DataFrame | None]:
    """Counts matrix, bucket column names and the frame (or None) of a hashed output."""
    if isinstance(hashed, pd.DataFrame):
        columns = [c for c in hashed.columns if _FEATURE.search(str(c))]
        if not columns:
            raise ValueError(f"{what}: no '<column>_HashingFeature.<i>' columns in the frame "
                             f"(columns are {list(hashed.columns)[:8]}...)")
        values = hashed[columns].to_numpy(dtype=float, na_value=np.nan)
        return values, [str(c) for c in columns], hashed
    values = np.asarray(hashed, dtype=float)
    if values.ndim == 1:
        values = values[np.newaxis, :]
    if values.ndim != 2:
        raise ValueError(f"{what}: expected rows x buckets (2 dimensions), got shape {values.shape}")
    return values, [str(i) for i in range(values.shape[1])], None


def _row_labels(labels, frame: pd.DataFrame | None, n: int, max_chars: int) -> list[str]:
    """Row text when given or when the frame holds one text column; else the row positions."""
    if labels is None and frame is not None:
        text = [c for c in frame.columns
                if not _FEATURE.search(str(c)) and (frame[c].dtype == object or
                                                    pd.api.types.is_string_dtype(frame[c]))]
        if len(text) == 1:
            labels = frame[text[0]]
    if labels is None:
        index = frame.index if frame is not None else range(n)
        return [str(i) for i in index]
    labels = ["" if pd.isna(x) else str(x) for x in labels]
    if len(labels) != n:
        raise ValueError(f"labels: expected {n} labels (one per row), got {len(labels)}")
    return [x if len(x) <= max_chars else x[: max_chars - 1] + "\u2026" for x in labels]


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _draw_counts(ax: Axes, counts: np.ndarray, rows: list[str], *, cmap="viridis",
                 vmin=None, vmax=None, annotate: bool = True):
    image = ax.imshow(counts, aspect="auto", interpolation="nearest", cmap=cmap, vmin=vmin, vmax=vmax)
    n_rows, n_buckets = counts.shape
    ax.set_yticks(range(n_rows), rows if n_rows <= 40 else None)
    if n_rows > 40:
        ax.set_yticks([])
    if n_buckets <= 32:
        ax.set_xticks(range(n_buckets))
    ax.set_xlabel("bucket (hashing feature index)")
    if annotate and counts.size <= _MAX_ANNOTATED_CELLS:
        lo, hi = image.get_clim()
        middle = (lo + hi) / 2
        for (i, j), value in np.ndenumerate(counts):
            if np.isnan(value) or value == 0:
                continue
            ax.text(j, i, f"{value:g}", ha="center", va="center", fontsize=8,
                    color="black" if value > middle else "white")
    return image


def hashed_heatmap(hashed, *, labels: Sequence | None = None, max_label_chars: int = 32,
                   title: str | None = None, ax: Axes | None = None) -> Axes:
    """Draw hashed feature counts as a rows x buckets heatmap.

    Parameters
    ----------
    hashed : DataFrame or array-like
        The output of :func:`azml_nb.feature_hashing` (its ``*_HashingFeature.<i>`` columns
        are drawn, other columns ignored) or a rows x buckets array of counts.
    labels : sequence of str, optional
        Row labels, typically the hashed text. By default the frame's only text column is
        used, if it has one, else the row index. Labels longer than *max_label_chars* are cut.
    title : str, optional
        Defaults to "Hashed feature counts (R rows x B buckets)".
    ax : matplotlib Axes, optional
        Where to draw; a new figure when omitted.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax.images[0].get_array()`` holds the counts as drawn.

    Examples
    --------
    >>> ax = hashed_heatmap([[1, 1, 2, 2, 0, 2, 0, 1]], labels=["This is a good day"])
    >>> ax.images[0].get_array().tolist()
    [[1.0, 1.0, 2.0, 2.0, 0.0, 2.0, 0.0, 1.0]]
    """
    counts, _, frame = _counts(hashed, "hashed")
    rows = _row_labels(labels, frame, counts.shape[0], max_label_chars)
    ax = _axes(ax, (min(14, 3 + 0.35 * counts.shape[1]), min(12, 1.5 + 0.35 * counts.shape[0])))
    image = _draw_counts(ax, counts, rows)
    bar = ax.figure.colorbar(image, ax=ax, label="count (features in bucket)")
    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()
    ax.set_ylabel("row")
    ax.set_title(title or f"Hashed feature counts ({counts.shape[0]} rows x {counts.shape[1]} buckets)")
    return ax


def _fold(counts: np.ndarray, width: int) -> np.ndarray:
    """Fold counts of a wider bitsize onto *width* buckets: bucket i goes to i & (width - 1)."""
    rows, wide = counts.shape
    if wide % width or wide & (wide - 1) or width & (width - 1):
        raise ValueError(f"cannot fold {wide} buckets onto {width}: both must be powers of two")
    return counts.reshape(rows, wide // width, width).sum(axis=1)


def mismatches(left, right) -> np.ndarray:
    """Boolean rows x buckets mask of the cells where two hashed outputs differ.

    A wider output (larger bitsize) is folded onto the narrower one first (bucket ``i`` of
    ``2**b`` buckets lands in ``i & (2**a - 1)``), which is exact for Feature Hashing, so two
    correct outputs at different bitsizes show no mismatch.

    >>> mismatches([[1, 0]], [[1, 1]]).tolist()
    [[False, True]]
    """
    a, _, _ = _counts(left, "left")
    b, _, _ = _counts(right, "right")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"left has {a.shape[0]} rows, right has {b.shape[0]}: "
                         "compare hashed outputs of the same rows")
    width = min(a.shape[1], b.shape[1])
    a, b = _fold(a, width), _fold(b, width)
    return ~((a == b) | (np.isnan(a) & np.isnan(b)))


def hashed_diff(left, right, *, names: tuple[str, str] = ("local", "service"),
                labels: Sequence | None = None, max_label_chars: int = 24,
                ax: Sequence[Axes] | None = None) -> Figure:
    """Draw two hashed outputs of the same rows side by side, and their difference.

    Three panels: *left*, *right*, and ``right - left`` with every mismatching cell boxed
    in red (rectangles with ``gid`` :data:`MISMATCH_GID`). Two outputs at different
    bitsizes are compared after folding the wider onto the narrower (see :func:`mismatches`).

    Parameters
    ----------
    left, right : DataFrame or array-like
        Hashed outputs (see :func:`hashed_heatmap`), e.g. local and service results.
    names : (str, str)
        Panel titles for *left* and *right*.
    labels : sequence of str, optional
        Row labels (the hashed text).
    ax : three matplotlib Axes, optional
        Where to draw the three panels; a new figure when omitted.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = hashed_diff([[1, 1, 2, 2]], [[1, 0, 2, 2]])
    >>> [p.get_xy() for p in fig.axes[2].patches if p.get_gid() == MISMATCH_GID]
    [(0.5, -0.5)]
    """
    a, _, frame_a = _counts(left, "left")
    b, _, frame_b = _counts(right, "right")
    mask = mismatches(a, b)
    width = mask.shape[1]
    diff = _fold(b, width) - _fold(a, width)
    rows = _row_labels(labels, frame_a if frame_a is not None else frame_b, a.shape[0], max_label_chars)
    if ax is None:
        fig, axes = plt.subplots(1, 3, figsize=(15, min(12, 2 + 0.35 * a.shape[0])),
                                 layout="constrained", sharey=True)
    else:
        axes = list(ax)
        if len(axes) != 3:
            raise ValueError(f"ax: expected three Axes (left, right, difference), got {len(axes)}")
        fig = axes[0].figure
    top = max(np.nanmax(a, initial=0), np.nanmax(b, initial=0))
    for axis, counts, name in ((axes[0], a, names[0]), (axes[1], b, names[1])):
        image = _draw_counts(axis, counts, rows, vmin=0, vmax=top)
        axis.set_title(f"{name} ({counts.shape[1]} buckets)")
    fig.colorbar(image, ax=list(axes[:2]), label="count (features in bucket)", location="bottom", shrink=0.6)
    axes[0].set_ylabel("row")
    span = max(1.0, np.nanmax(np.abs(diff), initial=0))
    image = _draw_counts(axes[2], diff, rows, cmap="RdBu_r", vmin=-span, vmax=span, annotate=False)
    for i, j in zip(*np.nonzero(mask)):
        if mask.size <= _MAX_ANNOTATED_CELLS and not np.isnan(diff[i, j]):
            axes[2].text(j, i, f"{diff[i, j]:+g}", ha="center", va="center", fontsize=8, color="white")
        axes[2].add_patch(Rectangle((float(j) - 0.5, float(i) - 0.5), 1, 1, fill=False, edgecolor="red",
                                    linewidth=2, gid=MISMATCH_GID))
    bar = fig.colorbar(image, ax=axes[2], label=f"{names[1]} - {names[0]} (count)", location="bottom",
                       shrink=0.8)
    bar.locator = MaxNLocator(integer=True)      # differences of counts are whole numbers
    bar.update_ticks()
    if not mask.any():
        axes[2].text(0.5, 0.5, "all cells agree", ha="center", va="center", fontsize=12,
                     color="#2a7d2e", transform=axes[2].transAxes)
    folded = " after folding" if a.shape[1] != b.shape[1] else ""
    axes[2].set_title(f"difference{folded}: {int(mask.sum())} of {mask.size} cells differ")
    return fig


# --- collisions --------------------------------------------------------------------------

_FOLD = 27942141
_MASK64 = (1 << 64) - 1


def _feature_hashes(texts: Iterable, ngrams: int) -> np.ndarray:
    """Distinct full 64-bit hashes of the features (1..N-grams of tokens) of *texts*.

    The hash is the Feature Hashing module's before masking (see ``azml_nb.hashing``):
    MurmurHash3_x86_32 (seed 0) of each whitespace token, a token of ASCII digits hashing
    to its integer value, n-grams folded left as ``h * 27942141 + next`` modulo 2**64.
    ``hash & (2**bitsize - 1)`` is the bucket; the tests check this against
    :func:`azml_nb.hash_text`.
    """
    import mmh3

    if not 0 <= int(ngrams) <= 10:
        raise ValueError(f"ngrams: {ngrams} is outside the Feature Hashing range 0..10")
    cache: dict[str, int] = {}
    seen: set[int] = set()
    for text in texts:
        if text is None or (not isinstance(text, str) and pd.isna(text)):
            continue
        hs = []
        for token in str(text).split():
            h = cache.get(token)
            if h is None:
                h = cache[token] = (int(token) & _MASK64 if token.isascii() and token.isdigit()
                                    else mmh3.hash(token.encode("utf-8"), 0, signed=False))
            hs.append(h)
        for n in range(1, max(1, int(ngrams)) + 1):
            for i in range(len(hs) - n + 1):
                h = hs[i]
                for nxt in hs[i + 1:i + n]:
                    h = (h * _FOLD + nxt) & _MASK64
                seen.add(h)
    return np.fromiter(seen, dtype=np.uint64, count=len(seen))


def collision_rates(texts: Iterable, *, bitsizes: Iterable[int] = range(1, 21),
                    ngrams: int = 2) -> pd.DataFrame:
    """How many distinct features (tokens and n-grams) of a corpus share a bucket.

    A feature *collides* at a bitsize when another distinct feature lands in its bucket.
    Two features that share a bucket at bitsize ``b + 1`` share one at ``b`` too (the
    bucket is the low bits of the hash), so the rate never rises with the bitsize.

    Parameters
    ----------
    texts : iterable of str
        The corpus (missing values are skipped).
    bitsizes : iterable of int
        Bitsizes to evaluate (1..31).
    ngrams : int
        N-grams setting of the Feature Hashing module.

    Returns
    -------
    DataFrame
        Indexed by ``bitsize``, with ``buckets``, ``features`` (distinct features in the
        corpus), ``colliding`` (features sharing their bucket), ``rate`` (colliding /
        features) and ``expected`` (the rate if the hash spread features uniformly).
    """
    hashes = _feature_hashes(texts, ngrams)
    n = len(hashes)
    rows = []
    for bits in bitsizes:
        if not 1 <= int(bits) <= 31:
            raise ValueError(f"bitsizes: {bits} is outside the Feature Hashing range 1..31")
        buckets = 1 << int(bits)
        _, inverse, sizes = np.unique(hashes & np.uint64(buckets - 1), return_inverse=True,
                                      return_counts=True)
        colliding = int((sizes[inverse] > 1).sum()) if n else 0
        expected = 1 - (1 - 1 / buckets) ** (n - 1) if n else 0.0
        rows.append((int(bits), buckets, n, colliding, colliding / n if n else 0.0, expected))
    return pd.DataFrame(rows, columns=["bitsize", "buckets", "features", "colliding", "rate",
                                       "expected"]).set_index("bitsize")


def collision_curve(texts: Iterable, *, bitsizes: Iterable[int] = range(1, 21), ngrams: int = 2,
                    ax: Axes | None = None) -> Axes:
    """Draw the share of distinct features that share a bucket, against bitsize.

    The solid line is the corpus (see :func:`collision_rates`); the dashed line is what a
    uniform hash would give for the same number of distinct features. Pick the smallest
    bitsize whose rate you can live with.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax.lines[0]`` holds (bitsize, % colliding) as drawn.
    """
    rates = collision_rates(texts, bitsizes=bitsizes, ngrams=ngrams)
    ax = _axes(ax, (8, 4.5))
    ax.plot(rates.index, 100 * rates["rate"], marker="o", label="this corpus")
    ax.plot(rates.index, 100 * rates["expected"], linestyle="--", color="grey",
            label="uniform hash (expected)")
    ax.set_xlabel("hashing bitsize (buckets = 2**bitsize)")
    ax.set_ylabel("distinct features sharing a bucket (%)")
    n = int(rates["features"].iloc[0]) if len(rates) else 0
    ax.set_title(f"Feature Hashing collisions: {n:,} distinct features, N-grams {ngrams}")
    ax.set_xticks(list(rates.index))
    ax.set_ylim(-2, 102)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left")      # the curve falls from top left to bottom right
    return ax


# --- gateway usage -----------------------------------------------------------------------

_NICE_FREQS = ["100ms", "200ms", "500ms", "1s", "2s", "5s", "10s", "15s", "30s", "1min", "2min", "5min", "10min", "15min",
               "30min", "1h", "2h", "3h", "6h", "12h", "1D"]


def _auto_freq(timestamps: pd.Series, bins: int = 40) -> str:
    span = timestamps.max() - timestamps.min() if len(timestamps) else pd.Timedelta(0)
    for freq in _NICE_FREQS:
        if span / pd.Timedelta(freq) <= bins:
            return freq
    return "1D"


def usage_timeline(records: pd.DataFrame, *, freq: str | None = None) -> pd.DataFrame:
    """Calls per time bucket by outcome, and mean latencies, from gateway usage records.

    Parameters
    ----------
    records : DataFrame
        The gateway's usage records (columns ``timestamp``, ``outcome``, ``api_time_ms``,
        ``service_time_ms``; others ignored).
    freq : str, optional
        A pandas frequency such as ``"10s"`` or ``"1min"``; chosen to give about 40 buckets
        when omitted.

    Returns
    -------
    DataFrame
        Indexed by bucket start (UTC), with ``success``, ``blocked``, ``failed`` (call
        counts), ``api_time_ms`` (mean over all calls) and ``service_time_ms`` (mean over
        the calls that reached the backend, i.e. not blocked); NaN where there is none.
    """
    missing = {"timestamp", "outcome", "api_time_ms", "service_time_ms"} - set(records.columns)
    if missing:
        raise ValueError(f"records: missing columns {sorted(missing)}; expected the gateway's "
                         "usage records")
    ts = pd.to_datetime(records["timestamp"], utc=True)
    freq = freq or _auto_freq(ts)
    frame = records.assign(timestamp=ts.dt.floor(freq))
    counts = (frame.groupby(["timestamp", "outcome"]).size().unstack(fill_value=0)
              .reindex(columns=list(_OUTCOME_COLORS), fill_value=0))
    api_time = frame.groupby("timestamp")["api_time_ms"].mean()
    # blocked calls never reach the backend: they would pull its mean towards 0
    reached = frame[frame["outcome"] != "blocked"]
    service_time = reached.groupby("timestamp")["service_time_ms"].mean()
    latency = pd.DataFrame({"api_time_ms": api_time, "service_time_ms": service_time})
    out = counts.join(latency, how="outer")
    if len(out):
        full = pd.date_range(out.index.min(), out.index.max(), freq=freq, name="timestamp")
        out = out.reindex(full)
        out[list(_OUTCOME_COLORS)] = out[list(_OUTCOME_COLORS)].fillna(0).astype("int64")
    out.attrs["freq"] = freq
    return out


def usage_dashboard(records: pd.DataFrame, *, freq: str | None = None,
                    ax: Sequence[Axes] | None = None) -> Figure:
    """Draw the gateway usage dashboard: calls over time by outcome, and latency.

    Top panel: stacked bars of calls per time bucket, green success, orange blocked
    (401/403/429 answered by the gateway), red failed. Bottom panel: mean gateway time
    (``api_time_ms``) and backend time (``service_time_ms``) per bucket.

    Parameters
    ----------
    records : DataFrame
        The gateway's usage records (see :func:`usage_timeline`).
    freq : str, optional
        Bucket width as a pandas frequency; automatic when omitted.
    ax : two matplotlib Axes, optional
        Where to draw the two panels; a new figure when omitted.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if ax is None:
        fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True, layout="constrained",
                                 height_ratios=[3, 2])
    else:
        axes = list(ax)
        if len(axes) != 2:
            raise ValueError(f"ax: expected two Axes (calls, latency), got {len(axes)}")
        fig = axes[0].figure
    calls, latency = axes
    timeline = usage_timeline(records, freq=freq)
    width = pd.Timedelta(timeline.attrs["freq"])
    total = {k: int(timeline[k].sum()) for k in _OUTCOME_COLORS}
    if timeline.empty:
        calls.text(0.5, 0.5, "no calls recorded", ha="center", va="center", transform=calls.transAxes)
    else:
        x = timeline.index.tz_convert(None).to_pydatetime()
        bottom = np.zeros(len(timeline))
        for outcome, color in _OUTCOME_COLORS.items():
            values = timeline[outcome].to_numpy(dtype=float)
            calls.bar(x, values, width=width * 0.9, bottom=bottom, align="edge", color=color,
                      label=f"{outcome} ({total[outcome]})", gid=outcome)
            bottom += values
        centre = [t + width / 2 for t in x]
        latency.plot(centre, timeline["api_time_ms"].to_numpy(dtype=float), marker=".",
                     label="gateway (api time)")
        latency.plot(centre, timeline["service_time_ms"].to_numpy(dtype=float), marker=".",
                     label="backend (service time)")
        slowest = np.nanmax(timeline[["api_time_ms", "service_time_ms"]].to_numpy(dtype=float), initial=0)
        if np.isfinite(slowest) and slowest > 0:
            latency.set_ylim(0, 1.35 * slowest)        # room for the legend above the lines
        latency.legend(loc="upper left", ncols=2)
        calls.set_ylim(0, 1.3 * max(1.0, bottom.max()))
        calls.legend(loc="upper left", ncols=3)
    calls.set_ylabel(f"calls per {timeline.attrs['freq']}")
    calls.set_title(f"Gateway calls by outcome ({sum(total.values())} calls)")
    latency.set_ylabel("mean latency (ms)")
    latency.set_xlabel("time (UTC)")
    latency.set_title("Latency")
    calls.yaxis.set_major_locator(MaxNLocator(integer=True))
    locator = AutoDateLocator()
    latency.xaxis.set_major_locator(locator)
    # clock times down to the second (not bare "53.5"); the date goes to the axis offset
    latency.xaxis.set_major_formatter(ConciseDateFormatter(
        locator, formats=["%Y", "%b", "%d", "%H:%M", "%H:%M", "%H:%M:%S.%f"]))
    for axis in axes:
        axis.grid(True, axis="y", alpha=0.3)
    return fig
