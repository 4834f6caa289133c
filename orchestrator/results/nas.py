"""An architecture search's table and figure (docs/nas.md), from its rows of the long results alone.

Every row is one test accuracy of an ``architecture`` trained on a ``proxy``: a method's set, the
whole training set for a few epochs (``early_stopping``), or the whole set itself (``whole``, the
ground truth). An architecture's accuracy on a proxy is the mean of its ``ok`` rows. Per proxy, the
table has:

- ``spearman_all``: Spearman's rank correlation between the proxy's and the whole set's accuracies
  over the architectures that both have; ``spearman_top<k>`` the same over the ``k`` best of those
  by whole-set accuracy (all of them where there are fewer than ``k``; ties in whole-set accuracy
  are taken in architecture-name order). Tied accuracies share their mean rank (scipy's spearmanr).
  A proxy that gives every architecture the same accuracy, or fewer than two architectures, has no
  ranking: NaN, shown as "—" in md and tex and left empty in csv.
- ``picked_accuracy`` and ``picked_rank``: the whole-set accuracy and rank (1 = best; tied
  accuracies share the best rank) of the architecture the proxy ranks first; where the proxy ties
  several for first, the mean over them (what picking one of them at random gives on average).
- ``search_seconds``: the device time of the search on the proxy, the sum over its cells and
  experiments of ``eval_seconds`` (training and testing the architecture's networks; the proxy's own
  making, before the search, is not counted).
- ``images``: the proxy's number of training images (its rows' ``train_images``).

FTD's published rows (``published.NAS_ROWS``) stand below ours in md, tex and html as another
paper's context; the csv holds our measured rows only.
"""
from __future__ import annotations

import csv
import html as html_text
import io
import math
import warnings
from typing import TYPE_CHECKING

from condense.methods import WHOLE

from .published import NAS_ROWS, NAS_SOURCE

if TYPE_CHECKING:  # pandas is imported where it is used
    import pandas as pd

TOP = (5, 10, 20)
COLUMNS = ("proxy", "spearman_all", *(f"spearman_top{k}" for k in TOP), "picked_accuracy", "picked_rank",
           "search_seconds", "images")
FORMATS = ("md", "tex", "csv")  # a search's table is written in all three
MARKED = 5  # the figure marks the top architectures by whole-set accuracy


def holds(rows: pd.DataFrame) -> bool:
    """Whether the rows are an architecture search's."""
    return "architecture" in rows and bool(rows["architecture"].notna().any())


def accuracies(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean ``ok`` accuracy per architecture (index) and proxy (columns, in order of appearance)."""
    ok = rows[rows["status"] == "ok"]
    acc = ok.groupby(["architecture", "proxy"])["accuracy"].mean().unstack("proxy")
    return acc.reindex(columns=_proxies(rows))


def _proxies(rows: pd.DataFrame) -> list[str]:
    """Every proxy of the rows (failed ones too, so that the table shows them), the whole set first."""
    seen = list(dict.fromkeys(rows["proxy"].dropna()))
    return sorted(seen, key=lambda p: p != WHOLE)


def spearman(x, y) -> float:
    """Spearman's rho of two equally long sequences; NaN where there is no ranking to compare
    (fewer than two values, or one side constant), without scipy's warning."""
    import numpy as np
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(spearmanr(x, y).statistic)


def table(rows: pd.DataFrame) -> pd.DataFrame:
    """The ``nas`` table, one row per proxy (the whole set first), the columns of ``COLUMNS``; with
    rows of several datasets, one block per dataset and a leading ``dataset`` column."""
    import pandas as pd

    if "dataset" in rows and rows["dataset"].nunique() > 1:
        parts = [_table(group).assign(dataset=name) for name, group in rows.groupby("dataset", sort=False)]
        out = pd.concat(parts, ignore_index=True)
        return out[["dataset", *COLUMNS]]
    return _table(rows)


def _table(rows: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    acc = accuracies(rows)
    whole = acc[WHOLE] if WHOLE in acc else pd.Series(math.nan, index=acc.index)
    out = []
    for proxy in acc.columns:
        own = rows[(rows["proxy"] == proxy) & (rows["status"] == "ok")]
        out.append({"proxy": proxy, **ranking(acc[proxy], whole), "search_seconds": _seconds(own),
                    "images": _images(own["train_images"])})
    return pd.DataFrame(out, columns=list(COLUMNS))


def _seconds(own: pd.DataFrame) -> float:
    """The training and testing time of the rows: each evaluation's seconds once (its networks' rows
    all carry the evaluation's time)."""
    once = [c for c in ("cell_id", "exp", "eval_model") if c in own]
    timed = own.drop_duplicates(once) if once else own
    return float(timed["eval_seconds"].astype(float).sum(min_count=1))


def ranking(proxy: pd.Series, whole: pd.Series) -> dict:
    """The correlations and the pick of one proxy's accuracies against the whole set's (both indexed
    by architecture), over the architectures both have."""
    both = proxy.notna() & whole.notna()
    x, y = proxy[both].astype(float), whole[both].astype(float)
    order = y.sort_index().sort_values(ascending=False, kind="stable").index
    out = {"spearman_all": spearman(x, y)}
    for k in TOP:
        top = order[:k]  # all of them where there are fewer than k
        out[f"spearman_top{k}"] = spearman(x[top], y[top])
    if x.empty:
        return {**out, "picked_accuracy": math.nan, "picked_rank": math.nan}
    picked = x.index[x == x.max()]
    rank = y.rank(ascending=False, method="min")
    return {**out, "picked_accuracy": float(y[picked].mean()), "picked_rank": float(rank[picked].mean())}


def _images(values: pd.Series) -> float:
    """The proxy's number of images: its rows' (the most common one, should they differ)."""
    values = values.dropna()
    return float(values.mode().iloc[0]) if not values.empty else math.nan


# ---------------------------------------------------------------------------------------------
# md, tex, csv

def _number(value, digits: int = 2, dash: str = "—") -> str:
    return dash if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _rank(value, dash: str) -> str:
    if value is None or math.isnan(value):
        return dash
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def _duration(seconds, dash: str) -> str:
    """Seconds under two minutes, else minutes (FTD gives minutes)."""
    if seconds is None or math.isnan(seconds):
        return dash
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:,.0f} min"


def _count(value, dash: str) -> str:
    return dash if value is None or math.isnan(value) else f"{value:,.0f}"


HEADER = ("proxy", "ρ all", *(f"ρ top {k}" for k in TOP), "picked: accuracy (%)", "picked: rank",
          "search time", "images", "source")
NOTE = ("ρ: Spearman's rank correlation between the architectures' test accuracies after training on the proxy and "
        "on the whole training set, over all architectures and over the top 5/10/20 by whole-set accuracy (all "
        "where there are fewer); picked: the whole-set accuracy and rank of the architecture the proxy ranks first; "
        "search time: device time training and testing every architecture on the proxy; — : no ranking (a constant "
        "proxy, fewer than two architectures) or not published.")


def _text_rows(tab: pd.DataFrame, dash: str, paper: bool = True) -> list[list[str]]:
    lead = ["dataset"] if "dataset" in tab else []
    ours = [[*(str(r[c]) for c in lead), str(r["proxy"]), *(_number(r[c], 2, dash) for c in COLUMNS[1:5]),
             _number(r["picked_accuracy"], 2, dash), _rank(r["picked_rank"], dash),
             _duration(r["search_seconds"], dash), _count(r["images"], dash), "ours"]
            for _, r in tab.iterrows()]
    theirs = [[*([""] * len(lead)), name, dash, *(f"{v:.2f}" for v in rhos), dash, dash,
               f"{minutes:,} min", f"{images:,}", NAS_SOURCE] for name, rhos, minutes, images in NAS_ROWS]
    return ours + theirs if paper else ours


def markdown(tab: pd.DataFrame, paper: bool = True) -> str:
    header = [*(["dataset"] if "dataset" in tab else []), *HEADER]
    lines = ["### Architecture search on proxy sets", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in _text_rows(tab, "—", paper)]
    theirs = f" Rows from {NAS_SOURCE}: another paper's search, published, not measured here." if paper else ""
    return "\n".join([*lines, "", NOTE + theirs, ""])


def html(tab: pd.DataFrame, paper: bool = True) -> str:
    """The table for the report: our rows, then FTD's in italics."""
    e = html_text.escape
    header = [*(["dataset"] if "dataset" in tab else []), *HEADER]
    lines = ["<table>", "<tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>"]
    for i, r in enumerate(_text_rows(tab, "—", paper)):
        style = "" if i < len(tab) else ' style="font-style: italic"'
        lines.append(f"<tr{style}>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>")
    return "\n".join([*lines, "</table>"])


def _tex(text: str) -> str:
    return (text.replace("\\", "\\textbackslash{}").replace("_", "\\_").replace("%", "\\%").replace("&", "\\&")
            .replace("ρ", "$\\rho$").replace("—", "---"))


def latex(tab: pd.DataFrame, paper: bool = True) -> str:
    """A table environment with booktabs rules; FTD's published rows below a rule, in italics."""
    header = [*(["dataset"] if "dataset" in tab else []), *HEADER]
    rows = _text_rows(tab, "---", paper)
    ours = len(tab)
    lead = len(header) - len(HEADER) + 1
    lines = ["\\begin{table}[t]", "\\centering", "\\caption{Architecture search on proxy sets}",
             "\\begin{tabular}{" + "l" * lead + "c" * (len(header) - lead - 1) + "l}", "\\toprule",
             " & ".join(map(_tex, header)) + " \\\\", "\\midrule"]
    for i, r in enumerate(rows):
        if i == ours:
            lines.append("\\midrule")
        cells = [_tex(c) for c in r]
        lines.append(" & ".join(cells if i < ours else [f"\\textit{{{c}}}" if c else c for c in cells]) + " \\\\")
    return "\n".join([*lines, "\\bottomrule", "\\end{tabular}", f"\\par\\footnotesize {_tex(NOTE)}", "\\end{table}", ""])


def csv_text(tab: pd.DataFrame, paper: bool = True) -> str:
    """Our measured rows only, full precision; NaN as an empty field (``paper`` changes nothing)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(tab.columns)
    for _, r in tab.iterrows():
        writer.writerow(["" if isinstance(v, float) and math.isnan(v) else
                         (f"{v:.0f}" if c == "images" else repr(float(v)) if isinstance(v, float) else v)
                         for c, v in r.items()])
    return out.getvalue()


RENDER = {"md": markdown, "tex": latex, "csv": csv_text}


# ---------------------------------------------------------------------------------------------
# The figure

def figures(plt, rows: pd.DataFrame, name: str, width: float) -> dict:
    """``<name>_<dataset>`` -> its figure: per proxy, each architecture's accuracy on it against its
    whole-set accuracy, the top ``MARKED`` by whole-set accuracy marked, the proxy's pick ringed.
    None for a dataset with no whole-set results or no other proxy yet."""
    out = {}
    for dataset, group in rows.groupby("dataset", sort=False):
        acc = accuracies(group)
        if WHOLE in acc and len(acc.columns) > 1 and acc[WHOLE].notna().any():
            out[f"{name}_{dataset}"] = _figure(plt, acc, dataset, width)
    return out


def _figure(plt, acc: pd.DataFrame, dataset: str, width: float):
    proxies = [p for p in acc.columns if p != WHOLE]
    ncols = min(len(proxies), 3)
    nrows = math.ceil(len(proxies) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, 2.3 * nrows + 0.5), squeeze=False, layout="constrained")
    whole = acc[WHOLE]
    for ax, proxy in zip(axes.flat, proxies):
        both = acc[proxy].notna() & whole.notna()
        x, y = whole[both], acc[proxy][both]
        top = x.sort_index().sort_values(ascending=False, kind="stable").index[:MARKED]
        rest = x.index.difference(top)
        ax.scatter(x[rest], y[rest], s=9, color="0.55", lw=0, label="architecture")
        ax.scatter(x[top], y[top], s=36, color="tab:red", marker="*", lw=0, label=f"top {MARKED} on the whole set")
        if not y.empty:
            picked = y.index[y == y.max()]
            ax.scatter(x[picked], y[picked], s=55, facecolor="none", edgecolor="black", lw=0.8,
                       label="the proxy's pick")
        r = ranking(acc[proxy], whole)
        ax.set_title(f"{proxy}: ρ {_number(r['spearman_all'])} (top {MARKED} {_number(r[f'spearman_top{MARKED}'])})")
        ax.set_xlabel("whole-set test accuracy (%)")
        ax.set_ylabel(f"accuracy after {proxy} (%)")
        ax.grid(alpha=0.3, lw=0.5)
    for ax in list(axes.flat)[len(proxies):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, frameon=False)
    fig.suptitle(f"Architecture search on proxy sets: {dataset}, {len(acc)} architectures", fontsize=9)
    return fig
