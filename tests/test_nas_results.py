"""The architecture search's table and figure on hand-made results, against hand-computed values."""
import io
import math
import warnings

import pandas as pd
import pytest

from orchestrator.results import nas as nas_analysis
from orchestrator.results.nas import COLUMNS, table
from orchestrator.results.published import NAS_SOURCE

ARCHS = list("abcdef")
WHOLE = [90, 80, 70, 60, 50, 40]  # a is the best architecture on the whole set, f the worst
PROXIES = {
    "same": [85, 75, 65, 55, 45, 35],   # the same order: rho 1
    "reversed": [35, 45, 55, 65, 75, 85],  # rho -1, picks the worst
    "swap": [70, 80, 60, 50, 40, 30],   # a and b swapped
    "ties": [50, 50, 40, 40, 30, 30],   # pairs tied
    "constant": [10] * 6,               # no ranking at all
}


def rows(proxies=PROXIES, archs=ARCHS, whole=WHOLE, seeds=(0,)) -> pd.DataFrame:
    out = []
    for proxy, accs in {"whole": whole, **proxies}.items():
        for arch, acc in zip(archs, accs):
            for seed in seeds:
                # two seeds average to acc: the table works on per-architecture means
                shift = (seed - (len(seeds) - 1) / 2) * 2.0
                out.append({"proxy": proxy, "architecture": arch, "accuracy": acc + shift, "status": "ok",
                            "condense_seconds": None, "eval_seconds": 1.5, "dataset": "MNIST",
                            "train_images": 60000 if proxy == "whole" else 100})
    return pd.DataFrame(out)


def by_proxy(tab: pd.DataFrame) -> dict:
    return {r["proxy"]: r for _, r in tab.iterrows()}


def test_nas_correlations_on_a_hand_made_case():
    tab = table(rows(seeds=(0, 1)))
    assert list(tab.columns) == list(COLUMNS)
    assert list(tab["proxy"]) == ["whole", *PROXIES]
    t = by_proxy(tab)
    assert t["whole"]["spearman_all"] == pytest.approx(1.0) and t["same"]["spearman_all"] == pytest.approx(1.0)
    assert t["reversed"]["spearman_all"] == pytest.approx(-1.0)
    # swap: squared rank differences sum to 2; rho = 1 - 6*2 / (n (n^2 - 1))
    assert t["swap"]["spearman_all"] == pytest.approx(1 - 12 / (6 * 35))
    assert t["swap"]["spearman_top5"] == pytest.approx(1 - 12 / (5 * 24))  # a..e
    assert t["swap"]["picked_accuracy"] == 80 and t["swap"]["picked_rank"] == 2
    assert t["reversed"]["picked_accuracy"] == 40 and t["reversed"]["picked_rank"] == 6
    assert t["same"]["picked_accuracy"] == 90 and t["same"]["picked_rank"] == 1
    # two seeds of 1.5 s per architecture; the images are the proxy's
    assert t["swap"]["search_seconds"] == pytest.approx(6 * 2 * 1.5)
    assert t["swap"]["images"] == 100 and t["whole"]["images"] == 60000


def test_nas_ties_share_their_mean_rank():
    t = by_proxy(table(rows()))["ties"]
    # ranks 1.5 1.5 3.5 3.5 5.5 5.5 against 1..6: covariance 16, variances 17.5 and 16
    assert t["spearman_all"] == pytest.approx(16 / math.sqrt(17.5 * 16))
    # top 5 (a..e): 1.5 1.5 3.5 3.5 5 against 1..5: covariance 9, variances 10 and 9
    assert t["spearman_top5"] == pytest.approx(9 / math.sqrt(10 * 9))
    # the proxy ties a and b for first: the mean of their whole-set accuracies and ranks
    assert t["picked_accuracy"] == 85 and t["picked_rank"] == 1.5


def test_nas_constant_proxy_is_nan_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's ConstantInputWarning must not reach the user
        tab = table(rows())
        texts = {f: render(tab) for f, render in nas_analysis.RENDER.items()}
    t = by_proxy(tab)["constant"]
    assert all(math.isnan(t[c]) for c in COLUMNS[1:5])
    assert t["picked_accuracy"] == pytest.approx(sum(WHOLE) / 6) and t["picked_rank"] == 3.5  # all tie first
    constant = next(line for line in texts["md"].splitlines() if line.startswith("| constant"))
    assert constant.split(" | ")[1:5] == ["—"] * 4
    assert "--- & --- & --- & ---" in texts["tex"]
    line = next(line for line in texts["csv"].splitlines() if line.startswith("constant,"))
    assert line.split(",")[1:5] == [""] * 4
    # the csv reads back as NaN
    back = pd.read_csv(io.StringIO(texts["csv"]))
    assert back.loc[back.proxy == "constant", "spearman_all"].isna().all()
    assert back.loc[back.proxy == "swap", "spearman_all"].iloc[0] == pytest.approx(1 - 12 / 210)


def test_nas_top_k_over_fewer_architectures_uses_all_of_them():
    three = {"swap": [70, 80, 60]}
    t = by_proxy(table(rows(three, ARCHS[:3], WHOLE[:3])))["swap"]
    expected = 1 - 6 * 2 / (3 * 8)
    for c in COLUMNS[1:5]:  # all, top 5, top 10, top 20: the same three architectures
        assert t[c] == pytest.approx(expected)


def test_nas_missing_and_failed_results_do_not_crash():
    r = rows({"swap": [70, 80, 60, 50, 40, 30], "failed": [1] * 6})
    r.loc[r.proxy == "failed", "status"] = "error"
    r.loc[r.proxy == "failed", "accuracy"] = None
    r = r[~((r.proxy == "swap") & (r.architecture == "a"))]  # one architecture not trained yet
    t = by_proxy(table(r))
    assert math.isnan(t["failed"]["spearman_all"]) and math.isnan(t["failed"]["picked_rank"])
    assert t["swap"]["spearman_all"] == pytest.approx(1.0)  # b..f, in the whole set's order
    assert t["swap"]["picked_accuracy"] == 80 and t["swap"]["picked_rank"] == 1  # ranked among b..f
    no_whole = table(r[r.proxy != "whole"])  # a live table before the ground truth has finished
    assert no_whole["spearman_all"].isna().all() and "whole" not in set(no_whole.proxy)


def test_nas_tables_mark_ftd_rows_as_published_and_keep_them_out_of_the_csv():
    tab = table(rows())
    md, tex, csv = (nas_analysis.RENDER[f](tab) for f in ("md", "tex", "csv"))
    ftd = [line for line in md.splitlines() if NAS_SOURCE in line]
    assert len(ftd) == 4  # three rows and the note
    assert "| MTT | — | 0.41 | 0.36 | -0.04 |" in md and "6,804 min" in md and "| ours |" in md
    assert "\\textit{MTT}" in tex and "\\textit{MTT}" not in nas_analysis.latex(tab, paper=False)
    assert NAS_SOURCE not in nas_analysis.markdown(tab, paper=False)
    back = pd.read_csv(io.StringIO(csv))
    assert list(back.columns) == list(COLUMNS) and list(back.proxy) == ["whole", *PROXIES]


def test_nas_search_seconds_count_each_evaluation_once():
    r = rows(seeds=(0, 1)).assign(cell_id=lambda f: f.proxy + "-" + f.architecture, exp=0,
                                  eval_model=lambda f: f.architecture)
    # both networks of an evaluation carry its 1.5 s: counted once per architecture
    assert by_proxy(table(r))["swap"]["search_seconds"] == pytest.approx(6 * 1.5)


@pytest.mark.slow  # draws a figure: seconds
def test_nas_figure_has_a_panel_per_proxy():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = nas_analysis.figures(plt, rows(), "nas", 6.9)
    assert list(figs) == ["nas_MNIST"]
    panels = [ax for ax in figs["nas_MNIST"].axes if ax.get_visible()]
    assert [ax.get_title().split(":")[0] for ax in panels] == list(PROXIES)
    plt.close("all")
    assert nas_analysis.figures(plt, rows({}), "nas", 6.9) == {}  # the whole set alone: nothing to draw
