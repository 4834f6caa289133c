"""Continual learning's figures (docs/continual.md): per dataset, ``<table>_<dataset>.png``, the test
accuracy on the classes seen so far against the number of classes seen, a line per method and a
panel per number of steps. Its points are the table's cells (``tables.grid``: mean ± std over class
orders × networks); the table itself is drawn as every other (layout ``cl``)."""
from __future__ import annotations


def holds(rows) -> bool:
    """Whether a table's rows are continual learning's (a step each)."""
    return bool(rows["step"].notna().any())


def figures(plt, df, name: str, width: float, colours: dict[str, str]) -> dict:
    """Figure name -> figure, one per dataset of table ``name``."""
    from . import tables

    header, row_keys, cells = tables.grid(df, name)
    steps = tables.columns(df, name)
    title = tables.layout_of(df, name).title
    frame = df[df["table"].apply(lambda t: name in t) & df["step"].notna()]
    seen = {(d, s, t): c for d, s, t, c in frame[["dataset", "steps", "step", "classes_seen"]].drop_duplicates()
            .itertuples(index=False)}
    out = {}
    for dataset in dict.fromkeys(k[0] for k in row_keys):
        panels = list(dict.fromkeys(k[1] for k in row_keys if k[0] == dataset))
        fig, axes = plt.subplots(1, len(panels), figsize=(width, 2.8), squeeze=False, layout="constrained")
        handles = {}
        for ax, count in zip(axes.flat, panels):
            ticks = set()
            for j, (key, row) in enumerate((k, r) for k, r in zip(row_keys, cells) if k[:2] == (dataset, count)):
                points = [(seen[(dataset, count, t)], s) for t, s in zip(steps, row) if s["state"] == "ok"]
                if not points:
                    continue
                method, x = key[2], [p[0] for p in points]
                ticks.update(x)
                handles[method] = ax.errorbar(x, [p[1]["mean"] for p in points], yerr=[p[1]["std"] for p in points],
                                              color=colours.get(method, f"C{j}"), marker="o", ms=3.5, lw=1.2,
                                              capsize=2, label=method)
            ax.set_xticks(sorted(ticks))
            ax.set_title(f"{dataset}, {count} steps")
            ax.set_xlabel("classes seen")
            ax.set_ylabel("test accuracy (%) on the classes seen")
            ax.grid(alpha=0.3, lw=0.5)
        fig.legend(handles=list(handles.values()), loc="outside lower center", ncol=min(6, max(1, len(handles))),
                   frameon=False)
        fig.suptitle(title, fontsize=9)
        out[f"{name}_{dataset}"] = fig
    return out
