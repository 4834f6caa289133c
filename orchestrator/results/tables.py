"""Markdown, LaTeX and CSV tables in the paper's layouts, rendered from a results Parquet alone.

    python -m orchestrator.tables runs/<sweep>/results.parquet [--out DIR] [--format md,tex,csv]
                                  [--tables NAME,...] [--no-published]

Each table cell is ``mean ± std`` over all of its accuracies (runs × networks), with the paper's
number and the difference (ours − paper) where docs/protocol.md has one (``--no-published`` leaves them
out). A cell with an error row reads "failed"; a cell with no accuracies (an interrupted run's, or
a position of the layout that no cell filled) reads "missing". LaTeX uses booktabs rules and sets
the best mean of each row in bold, as the paper's Table 1 (the whole-dataset bound is not a
contender); CSV has one line per table cell with its numbers. An architecture search's table has a
shape of its own (one row per proxy: nas.py, docs/nas.md), written as md, tex and always csv.
Continual learning's table (``cl``, docs/continual.md): a row per dataset, number of steps and
method, a column per step, no published number and no bold (a row is one method's steps); a step
a row does not have is left blank; always with its csv too.
Rows and columns keep the order in which they first appear in the Parquet: the sweep file's.
"""
from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from condense.errors import ConfigError, OneLineParser, one_line
from condense.files import safe_name, write_text
from condense.methods import BOUND, names

from ..sweep.layouts import TABLES, Layout, from_plain, generic
from . import nas
from .published import published

if TYPE_CHECKING:  # pandas is imported where it is used: --help answers at once
    import pandas as pd

FORMATS = ("md", "tex", "csv")

NOTE = ("Each cell: mean ± std (%) over all runs × networks; in brackets the paper's number and "
        "the difference ours − paper, where the paper reports one.")


def table_names(df: pd.DataFrame) -> list[str]:
    """The tables the Parquet's cells belong to, in order of first appearance."""
    return list(dict.fromkeys(t for cell_tables in df["table"] for t in cell_tables))


def layout_of(df: pd.DataFrame, name: str) -> Layout:
    """Table ``name``'s layout: the paper's, else the one its sweep recorded (``attrs["layouts"]``),
    else the columns that vary among its rows (a Parquet without layouts, e.g. ``python -m evaluation``'s)."""
    if name in TABLES:
        return TABLES[name]
    recorded = df.attrs.get("layouts", {}).get(name)
    if recorded is not None:
        return from_plain(name, recorded)
    frame = _in_table(df, name)
    varying = [c for c in ("dataset", "model", "ipc", "eval_mode", "dis_metric", "method", "eval_model")
               if frame[c].nunique() > 1]  # nulls (a coreset's distance) do not count
    return generic(name, varying)


def _in_table(df: pd.DataFrame, name: str) -> pd.DataFrame:
    return df[df["table"].apply(lambda tables: name in tables)]


def _value(v):
    """A Parquet value as plain Python: None for a null."""
    return None if _isna(v) else v


def _isna(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def _unique(frame: pd.DataFrame, columns: list[str]) -> list[tuple]:
    return list(dict.fromkeys(map(tuple, frame[columns].itertuples(index=False))))


def _summary(group: pd.DataFrame) -> dict:
    """What one table cell says: failed, missing, or the mean/std and the published number."""
    if (group["status"] == "error").any():
        return {"state": "failed"}
    ok = group[group["status"] == "ok"]
    if ok.empty:
        return {"state": "missing"}
    acc = ok["accuracy"].astype(float)
    first = ok.iloc[0]
    # continual learning's step: the sources publish no number for it (docs/protocol.md)
    paper = None if not _isna(first.get("step")) else published(
        first["dataset"], first["model"], _value(first["ipc"]), first["eval_mode"], _value(first["dis_metric"]),
        first["method"], first["eval_model"], _value(first.get("dsa_strategy")))
    return {"state": "ok", "mean": acc.mean(), "std": acc.std(ddof=0), "n": len(acc), "paper": paper}


def cell_text(s: dict, pm: str, delta: str, paper: bool = True, bold: str = "{}") -> str:
    if s["state"] == "blank":
        return ""
    if s["state"] != "ok":
        return s["state"]
    text = bold.format(f"{s['mean']:.2f} {pm} {s['std']:.2f}")
    if paper and s["paper"] is not None:
        mean, std = s["paper"]
        number = f"{mean:.1f}" if std is None else f"{mean:.1f} {pm} {std:.1f}"  # some sources give no std
        text += f" [{number}; {delta}{s['mean'] - mean:+.2f}]"
    return text


def grid(df: pd.DataFrame, name: str) -> tuple[list[str], list[tuple], list[list[dict]]]:
    """Header labels, row labels and the summary of every (row, column) of table ``name``."""
    layout = layout_of(df, name)
    frame = _in_table(df, name)
    rows, column = list(layout.rows), layout.column
    spans = frame[column].isin(layout.spanning)
    if spans.all():  # nothing to span across: show such cells as any other
        spans[:] = False
    cols = _ordered([c[0] for c in _unique(frame, [column])], layout.labels)
    row_keys = _unique(frame[~spans], rows)
    by_pos = {key: g for key, g in frame[~spans].groupby(rows + [column], sort=False, dropna=False)}
    by_group = {key: g for key, g in frame[spans].groupby(rows[:-1] + [column], sort=False, dropna=False)}
    empty, shown, spanning = frame.iloc[:0], set(), spans.any()

    def summary(row: tuple, col) -> dict:
        if layout.sparse and (*row, col) not in by_pos:
            return {"state": "blank"}
        if not spanning or col not in layout.spanning:
            return _summary(by_pos.get((*row, col), empty))
        group = (*row[:-1], col)
        if group in shown:  # shown in the group's first row already
            return {"state": "blank"}
        shown.add(group)
        return _summary(by_group.get(group, empty))

    cells = [[summary(r, c) for c in cols] for r in row_keys]
    header = [*rows[:-1], f"{rows[-1]} \\ {column}", *(layout.labels.get(str(c), str(c)) for c in cols)]
    return header, row_keys, cells


def _ordered(values: list, labels: dict[str, str]) -> list:
    """Labelled values in the labels' order, then the others as they appeared."""
    order = list(labels)
    return sorted(values, key=lambda v: order.index(v) if v in order else len(order))


def notes(df: pd.DataFrame, name: str) -> list[str]:
    """The table's footnotes: how to read a cell, and the epochs behind the whole-dataset numbers."""
    frame = _in_table(df, name)
    whole = frame[frame["method"].isin(names(BOUND)) & (frame["status"] == "ok")]
    out = [NOTE]
    if not whole.empty:
        epochs = "/".join(str(int(e)) for e in sorted(whole["epochs"].dropna().unique()))
        images = "/".join(str(int(n)) for n in sorted(whole["train_images"].dropna().unique()))
        out.append(f"Whole dataset: networks trained on {images} training images for {epochs} epochs with the "
                   "evaluation trainer (the paper gives no schedule).")
    seen = frame.dropna(subset=["step"]).drop_duplicates(["dataset", "steps", "step"]) if "step" in frame else frame[:0]
    if not seen.empty:  # continual learning: what a step column means
        per = "; ".join(f"{d} in {s} steps: {', '.join(str(c) for c in g.sort_values('step')['classes_seen'])}"
                        for (d, s), g in seen.groupby(["dataset", "steps"], sort=False))
        out.append("Continual learning: after each step, networks trained from scratch on the memory (every "
                   "step's set so far) and tested on the classes seen so far; a cell spans the class orders "
                   f"and networks. Classes seen at each step: {per}.")
    return out


def label(value) -> str:
    return "" if _isna(value) else str(value)


def _notes(df: pd.DataFrame, name: str, paper: bool) -> list[str]:
    out = notes(df, name)
    return out if paper else [out[0].split("; in brackets")[0] + ".", *out[1:]]


def markdown(df: pd.DataFrame, name: str, paper: bool = True) -> str:
    header, row_keys, cells = grid(df, name)
    lines = [f"### {layout_of(df, name).title}", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    for key, row in zip(row_keys, cells):
        lines.append("| " + " | ".join([*map(label, key), *(cell_text(s, "±", "Δ ", paper) for s in row)]) + " |")
    return "\n".join([*lines, "", *_notes(df, name, paper), ""])


def best(row: list[dict], contenders: list[bool]) -> set[int]:
    """Positions of the row's highest mean among the contending columns (all of them on a tie)."""
    means = {i: s["mean"] for i, s in enumerate(row) if contenders[i] and s["state"] == "ok"}
    top = max(means.values(), default=None)
    return {i for i, m in means.items() if round(m, 2) == round(top, 2)}


def _tex_escape(text: str) -> str:
    return text.replace("\\", "\\textbackslash{}").replace("_", "\\_").replace("%", "\\%").replace("&", "\\&")


def latex(df: pd.DataFrame, name: str, paper: bool = True) -> str:
    """A table environment with booktabs rules (\\usepackage{booktabs}), each row's best in bold."""
    header, row_keys, cells = grid(df, name)
    layout = layout_of(df, name)
    labels = len(layout.rows)
    contenders = competing(df, name)
    lines = ["\\begin{table}[t]", "\\centering", f"\\caption{{{_tex_escape(layout.title)}}}",
             "\\begin{tabular}{" + "l" * labels + "c" * (len(header) - labels) + "}",
             "\\toprule", " & ".join(map(_tex_escape, header)) + " \\\\", "\\midrule"]
    for key, row in zip(row_keys, cells):
        top = best(row, contenders)
        texts = [_tex_escape(label(k)) for k in key] + [
            cell_text(s, "$\\pm$", "$\\Delta$", paper, "\\textbf{{{}}}" if i in top else "{}")
            for i, s in enumerate(row)]
        lines.append(" & ".join(texts) + " \\\\")
    footnotes = [f"\\par\\footnotesize {_tex_escape(n)}" for n in notes(df, name)[1:]]
    return "\n".join([*lines, "\\bottomrule", "\\end{tabular}", *footnotes, "\\end{table}", ""])


def competing(df: pd.DataFrame, name: str) -> list[bool]:
    """Per column of table ``name``, whether its mean competes for its row's bold: not the bound's;
    none in a continual table, whose row is one method's steps."""
    layout = layout_of(df, name)
    return [not layout.sparse and c not in layout.spanning for c in columns(df, name)]


def columns(df: pd.DataFrame, name: str) -> list:
    """The column values of table ``name``, in the order :func:`grid` shows them."""
    layout = layout_of(df, name)
    return _ordered([c[0] for c in _unique(_in_table(df, name), [layout.column])], layout.labels)


def csv_text(df: pd.DataFrame, name: str, paper: bool = True) -> str:
    """One line per table cell: its row labels, column, state, mean, std, accuracies and the paper's."""
    header, row_keys, cells = grid(df, name)
    layout = layout_of(df, name)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*layout.rows, layout.column, "state", "mean", "std", "n",
                     *(["paper_mean", "paper_std"] if paper else [])])
    for key, row in zip(row_keys, cells):
        for col, s in zip(columns(df, name), row):
            if s["state"] == "blank":
                continue
            ok = s["state"] == "ok"
            numbers = [f"{s['mean']:.4f}", f"{s['std']:.4f}", s["n"]] if ok else ["", "", 0]
            pub = s.get("paper") or ("", "")
            writer.writerow([*map(label, key), col, s["state"], *numbers, *(pub if paper else [])])
    return out.getvalue()


RENDER = {"md": markdown, "tex": latex, "csv": csv_text}


def write_tables(df: pd.DataFrame, folder: str | Path, formats: tuple[str, ...] = ("md", "tex"),
                 names: list[str] | None = None, paper: bool = True) -> list[str]:
    """Write ``<table>.<format>`` for every table in ``df`` (or those in ``names``); return the texts
    of the first format."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names or table_names(df):
        safe_name(name, str(folder), "table name")  # a file name: nothing goes outside the folder
        rows = _in_table(df, name)
        if nas.holds(rows):  # an architecture search: its own table, always with its csv
            search = nas.table(rows)
            texts = {f: nas.RENDER[f](search, paper) for f in dict.fromkeys((*formats, *nas.FORMATS))}
        else:  # continual learning's table: always with its csv too, as a search's
            always = ("csv",) if layout_of(df, name).sparse else ()
            texts = {f: RENDER[f](df, name, paper) for f in dict.fromkeys((*formats, *always))}
        for f, text in texts.items():
            write_text(folder / f"{name}.{f}", text)
        out.append(texts[formats[0]])
    return out


def _choices(kind: str, text: str, allowed) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    for v in values:
        if v not in allowed:
            raise ConfigError(f"unknown {kind} {v!r}; allowed: {', '.join(allowed)}")
    if not values:
        raise ConfigError(f"--{kind} is empty; allowed: {', '.join(allowed)}")
    return values


def main(argv=None) -> int:
    p = OneLineParser(prog="python -m orchestrator.tables", description=__doc__.split("\n\n")[0])
    p.add_argument("parquet", help="a sweep's results.parquet")
    p.add_argument("--out", default=None, help="where the tables go (default: tables/ beside the Parquet)")
    p.add_argument("--format", default="md,tex",
                   help=f"comma-separated, from {', '.join(FORMATS)}; the first is printed (default md,tex)")
    p.add_argument("--tables", default=None, help="comma-separated table names (default: every table in the file)")
    p.add_argument("--no-published", action="store_true", help="leave out the paper's numbers (the brackets)")
    args = p.parse_args(argv)
    try:
        formats = _choices("format", args.format, FORMATS)
        from . import run_reader

        df = run_reader.read(args.parquet).rows
        names = None
        if args.tables is not None:
            names = _choices("tables", args.tables, table_names(df))
        folder = Path(args.out or Path(args.parquet).parent / "tables")
        try:
            texts = write_tables(df, folder, tuple(formats), names, not args.no_published)
        except OSError as err:  # --out names a file, a folder we may not write in, a full disk
            raise ConfigError(f"--out {folder}: cannot write the tables there ({err.strerror or err})") from None
    except ConfigError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    for text in texts:
        print(text)
    return 0
