"""Figures of a sweep, drawn from its results Parquet (and the curves beside it) alone:

    python -m orchestrator.plots runs/<sweep>/results.parquet [--output DIR]

writes ``<table>.png`` and ``.pdf`` per table in the file into DIR (default ``plots/`` beside the
Parquet): Table 1 and every layout with rows dataset/ipc (the methods table, the ipc curves) as
accuracy against images per class on a log axis, one panel per dataset and one line per method
(error bars: std over runs × networks; hollow markers: the published numbers; the whole-dataset
bound as a horizontal line); Table 2 as a heatmap (rows condense with, columns
evaluate on; ours and, below, the paper's); the ablations and the distance table as grouped bars
with error bars (diamonds: the paper's numbers, docs/protocol.md). ``curves.png`` / ``.pdf``:
test accuracy and matching loss against the outer iteration, one line per condensed cell (mean over
its runs), from ``curves.parquet``. An architecture search's table: ``<table>_<dataset>.png`` /
``.pdf``, per proxy each architecture's accuracy on it against its whole-set accuracy (nas.py). A
continual-learning table (``cl``): ``<table>_<dataset>.png`` / ``.pdf``, the accuracy on the classes
seen against their number, a line per method (continual.py).
``sets_ipc<k>.png`` / ``.pdf``: the condensed images of each ipc,
from ``synthetic/`` beside the Parquet (orchestrator/results/set_figures.py). Sized for a two-column paper (6.9 in wide).
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

from condense.errors import ConfigError, OneLineParser, one_line
from condense.files import replacing, safe_name
from condense.methods import BOUND, WHOLE, names

WIDTH = 6.9  # inches: a two-column paper's text width
DPI = 200
HEATMAPS = ("table2",)
IPC_ROWS = ("dataset", "ipc")  # a layout with these rows is drawn as accuracy against ipc
CURVES = "curves"
# the paper's method colours stay the same in every figure
_COLOURS = {"random": "tab:gray", "herding": "tab:olive", "kcenter": "tab:cyan", "forgetting": "tab:purple",
            "DC": "tab:red", WHOLE: "black"}


def write_plots(results_path: str | Path, folder: str | Path | None = None, run=None) -> list[Path]:
    """Draw every table of the results file, and the curves if ``curves.parquet`` is beside it
    with any rows; returns the files written. Safe to call whenever the results are rewritten.
    ``run``: the file as ``run_reader.read`` gave it already (else it is read here)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never a window, also on a headless node
    import matplotlib.pyplot as plt

    from . import continual, nas, run_reader, set_figures, tables

    results_path = Path(results_path)
    folder = Path(folder) if folder is not None else results_path.parent / "plots"
    df = (run or run_reader.read(results_path)).rows
    curves_path = results_path.parent / "curves.parquet"
    c = run_reader.read_curves(curves_path) if os.path.lexists(curves_path) else None
    folder.mkdir(parents=True, exist_ok=True)
    figures = {}
    for name in tables.table_names(df):
        rows = df[df["table"].apply(lambda t: name in t)]
        if nas.holds(rows):  # an architecture search: a figure per dataset
            with plt.rc_context(_STYLE):
                figures.update(nas.figures(plt, rows, name, WIDTH))
        elif continual.holds(rows):  # continual learning: a figure per dataset
            with plt.rc_context(_STYLE):
                figures.update(continual.figures(plt, df, name, WIDTH, _COLOURS))
        else:
            figures[name] = _draw_table(plt, df, name)
    with plt.rc_context(_STYLE):
        written = set_figures.write_set_figures(results_path.parent, df, folder, plt, WIDTH, DPI, _METADATA)
    if c is not None and not c.empty:
        figures[CURVES] = _draw_curves(plt, c)
    for name, fig in figures.items():
        safe_name(name, str(folder), "figure name")  # a file name: nothing goes outside the folder
        for suffix in ("png", "pdf"):
            path = folder / f"{name}.{suffix}"
            with replacing(path) as tmp:
                fig.savefig(tmp, format=suffix, dpi=DPI, bbox_inches="tight", metadata=_METADATA[suffix])
            written.append(path)
        plt.close(fig)
    return written


_STYLE = {"font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "legend.fontsize": 7,
          "xtick.labelsize": 7, "ytick.labelsize": 7}
# no creation dates: the same results give the same files
_METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Creator": None, "Producer": None}}


def _draw_table(plt, df, name: str):
    from . import tables

    header, row_keys, cells = tables.grid(df, name)
    cols = tables.columns(df, name)
    layout = tables.layout_of(df, name)
    labels = header[len(layout.rows):]
    with plt.rc_context(_STYLE):
        if layout.rows == IPC_ROWS:  # a line per method against ipc (Table 1, the ipc curves)
            return _accuracy_vs_ipc(plt, row_keys, cols, labels, cells, layout.title)
        if name in HEATMAPS:
            return _heatmap(plt, row_keys, labels, cells, layout.title)
        return _grouped_bars(plt, row_keys, cols, labels, cells, layout)


def _ok(s: dict) -> bool:
    return s["state"] == "ok"


def _accuracy_vs_ipc(plt, row_keys, cols, labels, cells, title: str):
    from . import tables

    datasets = list(dict.fromkeys(k[0] for k in row_keys))
    ncols = min(len(datasets), 4)
    nrows = math.ceil(len(datasets) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(WIDTH, 2.4 * nrows + 0.6), squeeze=False, layout="constrained")
    handles = {}
    for ax, dataset in zip(axes.flat, datasets):
        # a table of whole cells alone has rows without an ipc
        rows = [(int(k[1]) if tables.label(k[1]) else None, r) for k, r in zip(row_keys, cells) if k[0] == dataset]
        ipcs = sorted({ipc for ipc, _ in rows if ipc is not None})
        for j, (col, label) in enumerate(zip(cols, labels)):
            colour = _COLOURS.get(col, f"C{j}")
            points = [(ipc, r[j]) for ipc, r in rows if _ok(r[j]) and (ipc is not None or col in names(BOUND))]
            if not points:
                continue
            if col in names(BOUND):  # no set size: our bound as a line, the paper's as a dotted one
                s = points[0][1]
                handles[label] = ax.axhline(s["mean"], color=colour, lw=1, ls="--", label=label)
                ax.axhspan(s["mean"] - s["std"], s["mean"] + s["std"], color=colour, alpha=0.08, lw=0)
                if s["paper"] is not None:
                    handles[f"{label}, paper"] = ax.axhline(s["paper"][0], color=colour, lw=0.8, ls=":",
                                                            label=f"{label}, paper")
                continue
            # methods side by side around each ipc (log axis: a factor), so their points never overlap
            dodge = 1.07 ** (j - (len(cols) - 1) / 2)
            x = [p[0] * dodge for p in points]
            handles[label] = ax.errorbar(x, [p[1]["mean"] for p in points], yerr=[p[1]["std"] for p in points],
                                         color=colour, marker="o", ms=3.5, lw=1.2, capsize=2, label=label)
            paper = [(p[0], p[1]["paper"]) for p in points if p[1]["paper"] is not None]
            if paper:
                ax.errorbar([p[0] * dodge for p in paper], [p[1][0] for p in paper], yerr=[p[1][1] or 0.0 for p in paper],  # a source may give no std
                            color=colour, marker="o", ms=5, mfc="none", ls="none", capsize=0, lw=0.6, alpha=0.8)
        ax.set_xscale("log")
        ax.set_xticks(ipcs, [str(i) for i in ipcs])
        ax.minorticks_off()
        if len(ipcs) <= 1:
            centre = ipcs[0] if ipcs else 1
            ax.set_xlim(centre / 1.5, centre * 1.5)
        ax.set_title(dataset)
        ax.set_xlabel("images per class")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3, lw=0.5)
    for ax in list(axes.flat)[len(datasets):]:
        ax.set_visible(False)
    paper = plt.Line2D([], [], color="0.3", marker="o", ms=5, mfc="none", ls="none", label="paper (hollow)")
    fig.legend(handles=[*handles.values(), paper], loc="outside lower center", ncol=min(4, len(handles) + 1),
               frameon=False)
    fig.suptitle(title, fontsize=9)
    return fig


def _heatmap(plt, row_keys, labels, cells, title: str):
    import matplotlib
    import numpy as np

    values = np.array([[s["mean"] if _ok(s) else np.nan for s in row] for row in cells], dtype=float)
    height = 0.55 * len(row_keys) + 1.6
    fig, ax = plt.subplots(figsize=(WIDTH, height), layout="constrained")
    finite = values[np.isfinite(values)]
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.85")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, aspect="auto",
                      vmin=finite.min() if finite.size else 0, vmax=finite.max() if finite.size else 100)
    span = (image.norm.vmin, image.norm.vmax)
    for i, row in enumerate(cells):
        for j, s in enumerate(row):
            if not _ok(s):
                ax.text(j, i, s["state"], ha="center", va="center", fontsize=7, color="0.3")
                continue
            text = f"{s['mean']:.1f} ± {s['std']:.1f}"
            if s["paper"] is not None:
                text += f"\n(paper {s['paper'][0]:.1f})"
            dark = (s["mean"] - span[0]) / max(1e-9, span[1] - span[0]) < 0.6
            ax.text(j, i, text, ha="center", va="center", fontsize=6.5, color="white" if dark else "black")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(row_keys)), [" ".join(map(str, k)) for k in row_keys])
    ax.set_xlabel("evaluated on")
    ax.set_ylabel("condensed with")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="test accuracy (%)", fraction=0.04, pad=0.02)
    return fig


def _grouped_bars(plt, row_keys, cols, labels, cells, layout):
    import numpy as np

    groups = [" ".join(map(str, k)) for k in row_keys]
    n = max(1, len(cols))
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(WIDTH, 2.8), layout="constrained")
    x = np.arange(len(groups))
    paper_drawn = False
    for j, (col, label) in enumerate(zip(cols, labels)):
        pos = x - 0.4 + width * (j + 0.5)
        ok = [i for i, row in enumerate(cells) if _ok(row[j])]
        ax.bar(pos[ok], [cells[i][j]["mean"] for i in ok], width * 0.92, yerr=[cells[i][j]["std"] for i in ok],
               capsize=1.5, color=f"C{j}", label=label, error_kw={"lw": 0.7})
        for i, row in enumerate(cells):
            if not _ok(row[j]):
                ax.text(pos[i], 1, row[j]["state"], rotation=90, ha="center", va="bottom", fontsize=6, color="0.4")
            elif row[j]["paper"] is not None:
                ax.plot(pos[i], row[j]["paper"][0], marker="D", ms=3.5, color="black", ls="none",
                        label=None if paper_drawn else "paper")
                paper_drawn = True
    ax.set_xticks(x, groups)
    ax.set_xlabel({"model": "condensed with"}.get(layout.rows[-1], layout.rows[-1]))
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(layout.title)
    ax.grid(axis="y", alpha=0.3, lw=0.5)
    legend_title = {"eval_model": "evaluated on", "dis_metric": "gradient distance"}.get(layout.column, layout.column)
    fig.legend(title=legend_title, loc="outside right upper", frameon=False)
    return fig


def _draw_curves(plt, c):
    """Test accuracy and matching loss against the outer iteration, one line per condensed cell.
    A cell evaluated on a pool draws the pool's first model (its curve has the end point only)."""
    lines = []
    for cell_id, frame in c.groupby("cell_id", sort=False):
        model = frame.groupby("eval_model", sort=False)["iteration"].nunique().idxmax()
        mean = frame[frame.eval_model == model].groupby("iteration").agg(
            accuracy=("accuracy", "mean"), loss=("loss", "mean")).reset_index()
        lines.append((f"{cell_id} ({model})", mean))
    with plt.rc_context(_STYLE):
        legend_rows = math.ceil(len(lines) / 2)
        fig, (acc, loss) = plt.subplots(1, 2, figsize=(WIDTH, 2.6 + 0.15 * legend_rows), sharex=True,
                                       layout="constrained")
        for k, (label, m) in enumerate(lines):
            # ten colours, then the next line style: up to 40 cells stay apart
            style = {"color": f"C{k % 10}", "ls": ("-", "--", ":", "-.")[k // 10 % 4], "marker": "o", "ms": 3,
                     "lw": 1.1}
            acc.plot(m.iteration, m.accuracy, label=label, **style)
            has_loss = m.loss.notna()
            loss.plot(m.iteration[has_loss], m.loss[has_loss], **style)
        acc.set_ylabel("test accuracy (%)")
        loss.set_ylabel("matching loss (per class and step)")
        if (c.loss.dropna() > 0).all() and c.loss.notna().any():
            loss.set_yscale("log")
        for ax in (acc, loss):
            ax.set_xlabel("outer iteration")
            ax.grid(alpha=0.3, lw=0.5)
        acc.set_title("test accuracy of the set (mean over runs)")
        loss.set_title("matching loss since the previous evaluation")
        fig.legend(*acc.get_legend_handles_labels(), loc="outside lower center", ncol=2, frameon=False)
    return fig


def main(argv=None) -> int:
    p = OneLineParser(prog="python -m orchestrator.plots", description=__doc__.split("\n\n")[0])
    p.add_argument("results", help="a sweep's results.parquet")
    p.add_argument("--output", default=None, help="where the figures go (default: plots/ beside the Parquet)")
    args = p.parse_args(argv)
    from . import run_reader

    try:
        run = run_reader.read(args.results)
        try:
            paths = write_plots(args.results, args.output, run)
        except OSError as err:  # --output names a file, a folder we may not write in, a full disk
            raise ConfigError(f"--output {args.output or 'plots/'}: cannot write the figures there "
                              f"({err.strerror or err})") from None
    except ConfigError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0
