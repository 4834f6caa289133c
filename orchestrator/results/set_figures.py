"""The paper's Figures 2 and 3 for a sweep: ``plots/sets_ipc<k>.png|.pdf``, one per ipc it made sets at.

Each figure has a block per dataset (and per method, when the sweep has several), a column per class
with its name, holding the ipc images of the first experiment of the first finished cell of that
dataset, method and ipc (its ``synthetic/<cell_id>-exp0.pt``), drawn pixel-exact (condense.visualise).
"""
from __future__ import annotations

from pathlib import Path

from condense.files import replacing
from condense.visualise import class_grid, draw_grid


def first_sets(out: Path, df) -> dict[int, list[tuple[str, Path, str]]]:
    """ipc -> [(block title, the set file, its dataset)], one block per (dataset, method), in the sweep's order."""
    made = df[(df["status"] == "ok") & df["ipc"].notna()]
    chosen: dict[int, dict[tuple[str, str], tuple[str, Path]]] = {}
    for cell_id, dataset, method, ipc in made[["cell_id", "dataset", "method", "ipc"]].drop_duplicates().itertuples(index=False):
        path = out / "synthetic" / f"{cell_id}-exp0.pt"
        if path.is_file():
            chosen.setdefault(int(ipc), {}).setdefault((dataset, method), (f"{dataset}, {method} ({cell_id})", path, dataset))
    return {ipc: list(blocks.values()) for ipc, blocks in sorted(chosen.items())}


def write_set_figures(out: str | Path, df, folder: Path, plt, width: float, dpi: int, metadata: dict) -> list[Path]:
    """Draw ``sets_ipc<k>.png|.pdf`` into ``folder`` for every ipc with sets on disk, ``width`` inches
    wide (``metadata``: per suffix, what the files say of themselves); the files written."""
    from evaluation.set_files import read

    written = []
    for ipc, blocks in first_sets(Path(out), df).items():
        # read as any set file is: checked, so a doctored one is one line naming it
        sets = [(title, read(path, dataset)[0]) for title, path, dataset in blocks]
        shapes = [class_grid(s)[0].shape for _, s in sets]
        heights = [h / w for h, w in (shape[:2] for shape in shapes)]
        fig, axes = plt.subplots(len(sets), 1, squeeze=False, layout="constrained",
                                 figsize=(width, sum(width * h + 0.7 for h in heights)),
                                 gridspec_kw={"height_ratios": [width * h + 0.7 for h in heights]})
        for ax, (title, synthetic) in zip(axes[:, 0], sets):
            draw_grid(ax, synthetic, title)
        fig.suptitle(f"Condensed sets, {ipc} image{'s' * (ipc > 1)} per class (first experiment)", fontsize=9)
        for suffix in ("png", "pdf"):
            path = folder / f"sets_ipc{ipc}.{suffix}"
            with replacing(path) as tmp:
                fig.savefig(tmp, format=suffix, dpi=dpi, metadata=metadata[suffix])
            written.append(path)
        plt.close(fig)
    return written
