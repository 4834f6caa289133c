"""Continual learning's figure (docs/continual.md): test accuracy on the classes seen so far against
the number of classes seen, a line per method, a panel per dataset and number of steps. ``plots``
draws it for a continual table (``plots/<table>.png``); its points are the table's cells (mean ±
std over class orders × networks)."""
from __future__ import annotations


def figure(plt, df, name: str, width: float, colours: dict[str, str]):
    from . import tables

    header, row_keys, cells = tables.grid(df, name)
    steps = tables.columns(df, name)
    layout = tables.layout_of(df, name)
    frame = df[df["table"].apply(lambda t: name in t) & df["step"].notna()]
    seen = {(d, s, t): c for d, s, t, c in frame[["dataset", "steps", "step", "classes_seen"]].drop_duplicates()
            .itertuples(index=False)}
    panels = list(dict.fromkeys((k[0], k[1]) for k in row_keys))
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 2.8), squeeze=False, layout="constrained")
    handles = {}
    for ax, (dataset, count) in zip(axes.flat, panels):
        ticks = set()
        for j, (key, row) in enumerate((k, r) for k, r in zip(row_keys, cells) if (k[0], k[1]) == (dataset, count)):
            points = [(seen[(dataset, count, t)], s) for t, s in zip(steps, row) if s["state"] == "ok"]
            if not points:
                continue
            method = key[2]
            x = [p[0] for p in points]
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
    fig.suptitle(layout.title, fontsize=9)
    return fig
