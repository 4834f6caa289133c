"""Markdown and LaTeX tables in the paper's layouts, rendered from a results Parquet alone.

    python -m orchestrator.tables runs/<sweep>/results.parquet [--out DIR]

Each table cell is ``mean ± std`` over all of its accuracies (runs × networks), with the paper's
number and the difference (ours − paper) where PAPER.md has one. A cell with an error row reads
"failed"; a cell with no accuracies (an interrupted run's, or a position of the layout that no
cell filled) reads "missing".
Rows and columns keep the order in which they first appear in the Parquet: the sweep file's.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from condense.errors import ConfigError

from . import results
from .cells import WHOLE
from .layouts import TABLES
from .published import published

NOTE = ("Each cell: mean ± std (%) over all runs × networks; in brackets the paper's number and "
        "the difference ours − paper, where the paper reports one.")


def table_names(df: pd.DataFrame) -> list[str]:
    """The tables the Parquet's cells belong to, in order of first appearance."""
    names = dict.fromkeys(t for cell_tables in df["table"].unique() for t in cell_tables.split(","))
    return [n for n in names if n in TABLES]


def _in_table(df: pd.DataFrame, name: str) -> pd.DataFrame:
    return df[df["table"].str.split(",").apply(lambda tables: name in tables)]


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
    paper = published(first["dataset"], first["model"], first["ipc"], first["eval_mode"],
                      first["dis_metric"], first["method"], first["eval_model"])
    return {"state": "ok", "mean": acc.mean(), "std": acc.std(ddof=0), "n": len(acc), "paper": paper}


def _text(s: dict, pm: str, delta: str) -> str:
    if s["state"] == "blank":
        return ""
    if s["state"] != "ok":
        return s["state"]
    text = f"{s['mean']:.2f} {pm} {s['std']:.2f}"
    if s["paper"] is not None:
        mean, std = s["paper"]
        paper = f"{mean:.1f}" if std is None else f"{mean:.1f} {pm} {std:.1f}"
        text += f" [{paper}; {delta}{s['mean'] - mean:+.2f}]"
    return text


def grid(df: pd.DataFrame, name: str) -> tuple[list[str], list[tuple], list[list[dict]]]:
    """Header labels, row labels and the summary of every (row, column) of table ``name``."""
    layout = TABLES[name]
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
    whole = frame[(frame["method"] == WHOLE) & (frame["status"] == "ok")]
    out = [NOTE]
    if not whole.empty:
        epochs = "/".join(str(int(e)) for e in sorted(whole["iterations"].unique()))
        images = "/".join(str(int(n)) for n in sorted(whole["train_images"].unique()))
        out.append(f"Whole dataset: networks trained on {images} training images for {epochs} epochs with the "
                   "evaluation trainer (the paper gives no schedule).")
    return out


def markdown(df: pd.DataFrame, name: str) -> str:
    header, row_keys, cells = grid(df, name)
    lines = [f"### {TABLES[name].title}", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    for key, row in zip(row_keys, cells):
        lines.append("| " + " | ".join([*map(str, key), *(_text(s, "±", "Δ ") for s in row)]) + " |")
    return "\n".join([*lines, "", *notes(df, name), ""])


def _tex_escape(text: str) -> str:
    return text.replace("\\", "\\textbackslash{}").replace("_", "\\_").replace("%", "\\%").replace("&", "\\&")


def latex(df: pd.DataFrame, name: str) -> str:
    header, row_keys, cells = grid(df, name)
    labels = len(TABLES[name].rows)
    lines = ["\\begin{table}[t]", "\\centering", f"\\caption{{{_tex_escape(TABLES[name].title)}}}",
             "\\begin{tabular}{" + "l" * labels + "c" * (len(header) - labels) + "}",
             "\\hline", " & ".join(map(_tex_escape, header)) + " \\\\", "\\hline"]
    for key, row in zip(row_keys, cells):
        texts = [_tex_escape(str(k)) for k in key] + [_text(s, "$\\pm$", "$\\Delta$") for s in row]
        lines.append(" & ".join(texts) + " \\\\")
    footnotes = [f"\\par\\footnotesize {_tex_escape(n)}" for n in notes(df, name)[1:]]
    return "\n".join([*lines, "\\hline", "\\end{tabular}", *footnotes, "\\end{table}", ""])


def write_tables(df: pd.DataFrame, folder: str | Path) -> list[str]:
    """Write ``<table>.md`` and ``<table>.tex`` for every table in ``df``; return the markdown."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in table_names(df):
        md = markdown(df, name)
        (folder / f"{name}.md").write_text(md)
        (folder / f"{name}.tex").write_text(latex(df, name))
        out.append(md)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m orchestrator.tables", description=__doc__.split("\n\n")[0])
    p.add_argument("parquet", help="a sweep's results.parquet")
    p.add_argument("--out", default=None, help="where the tables go (default: tables/ beside the Parquet)")
    args = p.parse_args(argv)
    try:
        df = _read(Path(args.parquet))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for md in write_tables(df, args.out or Path(args.parquet).parent / "tables"):
        print(md)
    return 0


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ConfigError(f"{path}: no such file (a sweep writes runs/<sweep>/results.parquet)")
    try:
        df = results.read(path)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: cannot read results ({' '.join(str(err).split())[:200]})") from None
    missing = [c for c in results.COLUMNS if c not in df.columns]
    if missing:
        raise ConfigError(f"{path}: not a sweep's results: missing columns {', '.join(missing)}")
    return df


if __name__ == "__main__":
    sys.exit(main())
