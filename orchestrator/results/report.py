"""A sweep's one-page report, ``runs/<sweep>/report.html``: every table, its figure, the condensed
sets (``plots/sets_ipc<k>.png``) and the learning curves, with the budgets and versions the rows were made with.

    python -m orchestrator.report runs/<sweep>

Drawn from what is on disk (``results.parquet``, ``plots/``, ``tables/``), so it can be rewritten
whenever they are. The page is self-contained: inline style, no scripts, nothing fetched from the
network; it links and shows only files of the run folder that exist, by relative path, so the
folder can be moved or copied as a whole.
"""
from __future__ import annotations

import html
import json
import sys
from pathlib import Path

from condense.files import write_text

NAME = "report.html"
_STYLE = """
body { font-family: sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.85em; }
th, td { border-bottom: 1px solid #ccc; padding: 0.25em 0.6em; text-align: center; }
th:first-child, td:first-child { text-align: left; }
td.best { font-weight: bold; }
td.failed { color: #b00; } td.missing { color: #888; }
img { max-width: 100%; }
.note, .files { font-size: 0.85em; color: #555; }
pre { font-size: 0.8em; background: #f6f6f6; padding: 0.5em; overflow-x: auto; }
"""


def write_report(out: str | Path, run=None) -> Path:
    """Write ``report.html`` in the run folder ``out`` (which holds ``results.parquet``); ``run``: that
    file as ``run_reader.read`` gave it already (else it is read here)."""
    from . import run_reader

    out = Path(out)
    page = render(out, run or run_reader.read(out / "results.parquet"))
    path = out / NAME
    write_text(path, page)
    return path


def render(out: Path, run=None) -> str:
    """The page, from the checked results ``run`` (``run_reader.Run``; else read here) and the files
    beside them."""
    from . import continual, nas, run_reader, tables

    run = run or run_reader.read(Path(out) / "results.parquet")
    df, meta, name = run.rows, run.metadata, run.name
    e = html.escape
    cells = df.groupby("cell_id", sort=False)["status"].agg(lambda s: "failed" if (s == "error").any() else
                                                             "missing" if (s != "ok").all() else "ok")
    counts = ", ".join(f"{n} {state}" for state, n in cells.value_counts().items())
    parts = [f"<h1>Sweep {e(name)}</h1>",
             f"<p>{len(cells)} cells: {e(counts)}; {int((df.status == 'ok').sum())} accuracies.</p>",
             _links(out, ["results.parquet", "curves.parquet", "sweep.json"], "Data")]
    for table in tables.table_names(df):
        rows = df[df["table"].apply(lambda t: table in t)]
        if nas.holds(rows):  # an architecture search: its table, and a figure per dataset
            parts += ["<h2>Architecture search on proxy sets</h2>", nas.html(nas.table(rows)),
                      f'<p class="note">{e(nas.NOTE)}</p>']
            for dataset in dict.fromkeys(rows["dataset"]):
                parts.append(_figure(out, f"plots/{table}_{dataset}", f"architecture search, {dataset}"))
            parts.append(_links(out, [f"tables/{table}.{f}" for f in nas.FORMATS]
                                + [f"plots/{table}_{d}.pdf" for d in dict.fromkeys(rows["dataset"])], "Files"))
            continue
        layout = tables.layout_of(df, table)
        parts.append(f"<h2>{e(layout.title)}</h2>")
        parts.append(_html_table(df, table))
        parts += [f'<p class="note">{e(n)}</p>' for n in tables.notes(df, table)]
        # continual learning: a figure per dataset
        stems = [f"plots/{table}_{d}" for d in dict.fromkeys(rows["dataset"])] if continual.holds(rows) \
            else [f"plots/{table}"]
        parts += [_figure(out, stem, layout.title) for stem in stems]
        parts.append(_links(out, [f"tables/{table}.{f}" for f in tables.FORMATS] + [f"{s}.pdf" for s in stems],
                            "Files"))
    set_figures = sorted((p for p in (out / "plots").glob("sets_ipc*.png") if p.stem[len("sets_ipc"):].isdigit()),
                         key=lambda p: int(p.stem[len("sets_ipc"):]))
    if set_figures:
        parts.append("<h2>Condensed sets</h2>")
        for png in set_figures:
            parts += [_figure(out, f"plots/{png.stem}", f"condensed sets, {png.stem}"),
                      _links(out, [f"plots/{png.stem}.pdf"], "Files")]
    if (out / "plots" / "curves.png").is_file():
        parts += ["<h2>Learning curves</h2>", _figure(out, "plots/curves", "learning curves"),
                  _links(out, ["plots/curves.pdf"], "Files")]
    if meta:
        shown = {k: meta[k] for k in ("budgets", "versions") if k in meta}
        parts += ["<h2>Budgets and versions</h2>", f"<pre>{e(json.dumps(shown, indent=1, sort_keys=True))}</pre>"]
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Sweep {e(name)}</title>'
            f"<style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def _html_table(df, name: str) -> str:
    from . import tables

    header, row_keys, cells = tables.grid(df, name)
    contenders = tables.competing(df, name)
    e = html.escape
    lines = ["<table>", "<tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>"]
    for key, row in zip(row_keys, cells):
        top = tables.best(row, contenders)
        tds = [f"<td>{e(tables.label(k))}</td>" for k in key]
        for i, s in enumerate(row):
            css = "best" if i in top else s["state"] if s["state"] in ("failed", "missing") else ""
            cls = f' class="{css}"' if css else ""
            tds.append(f"<td{cls}>{e(tables.cell_text(s, '±', 'Δ '))}</td>")
        lines.append("<tr>" + "".join(tds) + "</tr>")
    return "\n".join([*lines, "</table>"])


def _figure(out: Path, stem: str, alt: str) -> str:
    if not (out / f"{stem}.png").is_file():
        return '<p class="note">(no figure: run python -m orchestrator.plots)</p>'
    return f'<p><img src="{html.escape(stem)}.png" alt="{html.escape(alt)}"></p>'


def _links(out: Path, names: list[str], label: str) -> str:
    found = [n for n in names if (out / n).is_file()]
    if not found:
        return ""
    links = " · ".join(f'<a href="{html.escape(n)}">{html.escape(n)}</a>' for n in found)
    return f'<p class="files">{label}: {links}</p>'


def main(argv=None) -> int:
    from condense.errors import ConfigError, OneLineParser, one_line

    from . import run_reader

    p = OneLineParser(prog="python -m orchestrator.report", description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="a sweep's run folder (runs/<sweep>), holding results.parquet")
    args = p.parse_args(argv)
    try:
        run = run_reader.read(Path(args.run) / "results.parquet")
        try:
            path = write_report(args.run, run)
        except OSError as err:  # a folder we may not write in, a full disk
            raise ConfigError(f"{args.run}: cannot write {NAME} there ({err.strerror or err})") from None
    except ConfigError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    print(path)
    return 0
