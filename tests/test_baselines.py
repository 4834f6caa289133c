import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from condense import baselines, methods
from condense.baselines import herding, k_center, most_forgotten
from condense.data import ImageSet
from condense.errors import ConfigError
from evaluation import reference
from evaluation.reference import ForgettingCounter, ReferenceBudget, whole
from evaluation.train import EvalBudget

METHODS = methods.names(methods.CORESET)

# A reference network of seconds: 2 epochs on 300 MNIST images (30 per class).
TINY = ReferenceBudget(epochs=2, max_train=300)


def select(method, train, ipc, seed, budget=ReferenceBudget(), cache_dir=None, reference_seed=0):
    """A coreset of ``budget.pool(train, reference_seed)`` with the reference network of ``reference_seed``
    (cached)."""
    pool = budget.pool(train, reference_seed)
    guide = None
    if methods.get(method).needs_reference:
        guide = reference.for_selection(pool, "ConvNet", budget, reference_seed, cache_dir)
    return baselines.select(method, pool, ipc, seed, guide)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("reference-cache")


# --- known answers on hand-made features -------------------------------------------------------

def test_herding_tracks_the_mean_not_the_nearest_points():
    # mean 0.6: pick 1 (mean 1), then -2 (mean -0.5; 3 is nearer the mean but gives 2), then 3 (0.67),
    # then -4 (-0.5 beats 5's 1.75), then 5
    x = torch.tensor([[5.0], [-4.0], [1.0], [3.0], [-2.0]])
    assert herding(x, 5).tolist() == [2, 4, 3, 1, 0]


def test_k_center_starts_at_the_mean_then_takes_the_farthest():
    x = torch.tensor([[0.0, 0], [1, 0], [0, 1], [10, 0], [0, -8], [-3, -3]])
    # mean (1.33, -1.67) is nearest (1, 0); then (10, 0) at 9; then (0, -8) (8.06 from (1, 0));
    # then (-3, -3) (5 from (1, 0)); the points near the origin come last
    assert k_center(x, 4).tolist() == [1, 3, 4, 5]


def brute_herding(x, k):
    """The definition, one candidate at a time."""
    mu, chosen = x.mean(0), []
    for _ in range(k):
        left = [i for i in range(len(x)) if i not in chosen]
        chosen.append(min(left, key=lambda i: float((mu - x[chosen + [i]].mean(0)).norm())))
    return chosen


def brute_k_center(x, k):
    chosen = [min(range(len(x)), key=lambda i: float((x[i] - x.mean(0)).norm()))]
    for _ in range(k - 1):
        left = [i for i in range(len(x)) if i not in chosen]
        chosen.append(max(left, key=lambda i: min(float((x[i] - x[j]).norm()) for j in chosen)))
    return chosen


@pytest.mark.parametrize("seed", range(3))
def test_greedy_selections_match_their_definitions(seed):
    x = torch.randn(40, 6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    assert herding(x, 12).tolist() == brute_herding(x, 12)
    assert k_center(x, 12).tolist() == brute_k_center(x, 12)


def test_k_center_never_repeats_on_duplicates():
    x = torch.zeros(5, 3)
    assert sorted(k_center(x, 5).tolist()) == [0, 1, 2, 3, 4]
    assert sorted(herding(x, 5).tolist()) == [0, 1, 2, 3, 4]


def test_forgetting_counts_correct_to_incorrect_transitions():
    counter = ForgettingCounter(4, "cpu")
    script = [  # (images presented, prediction correct?) batch after batch, 4 epochs
        ([0, 1, 2, 3], [1, 0, 1, 0]),
        ([2, 0], [0, 0]), ([3, 1], [0, 1]),
        ([1, 0, 2, 3], [0, 1, 1, 0]),
        ([3, 2, 1, 0], [0, 0, 1, 0]),
    ]
    for idx, correct in script:
        counter.update(torch.tensor(idx), torch.tensor(correct, dtype=torch.bool))
    # 0: T F T F -> 2; 1: F T F T -> 1 (a first miss is not forgetting); 2: T F T F -> 2; 3: never right -> 0
    assert counter.counts.tolist() == [2, 1, 2, 0]
    # the ranking score: a never-learned image counts as many events as it had presentations (4)
    assert counter.scores().tolist() == [2, 1, 2, 4]


def test_most_forgotten_takes_the_top_and_breaks_ties_at_random():
    counts = torch.tensor([5, 2, 2, 2, 2, 0, 7])
    picks = {tuple(sorted(most_forgotten(counts, 3, torch.Generator().manual_seed(s)).tolist())) for s in range(20)}
    assert all(p[:1] == (0,) and 6 in p and set(p) <= {0, 1, 2, 3, 4, 6} for p in picks)
    assert len(picks) > 1  # the tie among images 1-4 is broken differently by different seeds
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert most_forgotten(counts, 3, g()).tolist() == most_forgotten(counts, 3, g()).tolist()


# --- the library on real MNIST -----------------------------------------------------------------

def test_reference_budget_is_the_evaluation_trainer():
    b = ReferenceBudget()
    assert (b.lr, b.momentum, b.weight_decay, b.batch_train, b.augment, b.max_train) == (0.01, 0.9, 5e-4, 256, True, None)
    assert b.subset == "stratified"
    with pytest.raises(ConfigError):
        ReferenceBudget(epochs=0)
    with pytest.raises(ConfigError, match="unknown subset 'random'; allowed: stratified, first"):
        ReferenceBudget(subset="random")


def class_sorted(train, n):
    """``n`` training images sorted by class, as a folder read class by class gives them."""
    idx = train.labels[:n].argsort(stable=True)
    return ImageSet(train.images[idx], train.labels[idx], train.info)


def test_a_reduced_pool_keeps_every_class_of_a_class_sorted_set(mnist):
    train = class_sorted(mnist[0], 3000)
    pool = ReferenceBudget(max_train=1005).pool(train, seed=0)
    counts = torch.bincount(pool.labels, minlength=10)
    assert len(pool) == 1005 and sorted(counts.tolist()) == [100] * 5 + [101] * 5  # floor or ceil of 100.5
    # the images are the set's own, in its order, each once
    assert (pool.labels[1:] >= pool.labels[:-1]).all()
    first = ReferenceBudget(max_train=1005, subset="first").pool(train, seed=0)
    assert set(first.labels.tolist()) < set(range(10))  # what the first N leave out


def test_a_short_class_gives_all_it_has_and_the_others_share_the_rest(mnist):
    train, _ = mnist
    keep = torch.cat([torch.nonzero(train.labels == 3).flatten()[:7], torch.nonzero(train.labels != 3).flatten()[:2000]])
    short = ImageSet(train.images[keep], train.labels[keep], train.info)
    counts = torch.bincount(ReferenceBudget(max_train=107).pool(short, seed=1).labels, minlength=10).tolist()
    assert counts[3] == 7 and sum(counts) == 107 and {c for i, c in enumerate(counts) if i != 3} <= {11, 12}


def test_the_first_subset_is_the_first_images_whatever_the_seed(mnist):
    train, _ = mnist
    for seed in (0, 5):
        pool = ReferenceBudget(max_train=300, subset="first").pool(train, seed)
        assert torch.equal(pool.images, train.images[:300]) and torch.equal(pool.labels, train.labels[:300])


def test_the_stratified_subset_is_drawn_with_the_seed(mnist):
    train, _ = mnist
    budget = ReferenceBudget(max_train=300)
    a, b, c = (budget.pool(train, s) for s in (4, 4, 5))
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert budget.pool(train, 4) is not train and ReferenceBudget(max_train=60000).pool(train, 4) is train


def test_the_budget_record_has_the_subset_only_where_it_changes_the_images():
    assert "subset" not in ReferenceBudget().record()  # no max_train: every image, as before the field
    assert "subset" not in ReferenceBudget(max_train=9, subset="first").record()  # what older versions did
    assert ReferenceBudget(max_train=9).record()["subset"] == "stratified"


@pytest.mark.slow  # over 2 s on 2 cores
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("ipc", [1, 10])
def test_select_returns_ipc_training_images_per_class(mnist, cache, method, ipc):
    train, _ = mnist
    s = select(method, train, ipc, seed=1, budget=TINY, cache_dir=cache)
    assert s.images.shape == (10 * ipc, 1, 28, 28) and s.dataset == "MNIST"
    assert s.labels.tolist() == torch.arange(10).repeat_interleave(ipc).tolist()
    idx, pool = torch.tensor(s.meta["indices"]), TINY.pool(train, 0)  # indices into the reference pool
    assert len(set(idx.tolist())) == 10 * ipc and int(idx.max()) < TINY.max_train
    assert torch.equal(s.images, pool.images[idx]) and torch.equal(s.labels, pool.labels[idx])
    assert s.meta["method"] == method and s.meta["ipc"] == ipc


def test_random_depends_on_the_seed_and_only_on_it(mnist):
    train, _ = mnist
    a, b, c = (select("random", train, 5, seed=s, budget=TINY).meta["indices"] for s in (0, 0, 1))
    assert a == b and a != c


@pytest.mark.slow  # over 2 s on 2 cores
def test_feature_methods_are_deterministic_given_the_reference(mnist, cache):
    train, _ = mnist
    for method in ("herding", "kcenter"):
        assert (select(method, train, 3, seed=0, budget=TINY, cache_dir=cache).meta["indices"]
                == select(method, train, 3, seed=9, budget=TINY, cache_dir=cache).meta["indices"])
    assert (select("herding", train, 3, 0, TINY, cache_dir=cache).meta["indices"]
            != select("kcenter", train, 3, 0, TINY, cache_dir=cache).meta["indices"])


@pytest.mark.slow  # over 2 s on 2 cores
def test_reference_is_cached_and_reused(mnist, tmp_path, monkeypatch):
    train, _ = mnist
    calls = []
    real_train = reference.train_reference
    monkeypatch.setattr(reference, "train_reference", lambda *a: calls.append(a[3]) or real_train(*a))
    first = reference.reference(train, "ConvNet", TINY, seed=0, cache_dir=tmp_path)
    again = reference.reference(train, "ConvNet", TINY, seed=0, cache_dir=tmp_path)
    assert calls == [0] and len(list((tmp_path / "reference").glob("*.pt"))) == 1
    assert all(torch.equal(first.state[k], again.state[k]) for k in first.state)
    assert torch.equal(first.forgetting, again.forgetting) and len(first.forgetting) == TINY.max_train
    # a forgetting event needs a correct presentation before it: at most one per two epochs, unless
    # the image was never learned, which scores one per epoch
    assert set(first.forgetting.unique().tolist()) <= set(range(TINY.epochs // 2 + 1)) | {TINY.epochs}
    select("forgetting", train, 2, seed=0, budget=TINY, cache_dir=tmp_path)
    whole(train, train, [0], TINY, cache_dir=tmp_path, eval_budget=EvalBudget(max_test=100))
    assert calls == [0]  # the selection and the bound reuse the cached network
    reference.reference(train, "ConvNet", TINY, seed=1, cache_dir=tmp_path)
    assert calls == [0, 1]  # another seed is another network


def test_a_damaged_reference_cache_is_trained_again_and_replaced(mnist, tmp_path, monkeypatch, caplog):
    train, _ = mnist
    budget = ReferenceBudget(epochs=1, max_train=100)
    calls = []
    real_train = reference.train_reference
    monkeypatch.setattr(reference, "train_reference", lambda *a: calls.append(a[3]) or real_train(*a))
    first = reference.reference(train, "MLP", budget, seed=0, cache_dir=tmp_path)
    (path,) = (tmp_path / "reference").glob("*.pt")
    path.write_bytes(path.read_bytes()[:300])  # cut off, as a full disk leaves it
    again = reference.reference(train, "MLP", budget, seed=0, cache_dir=tmp_path)
    assert calls == [0, 0] and "is unreadable" in caplog.text and str(path) in caplog.text
    assert all(torch.equal(first.state[k], again.state[k]) for k in first.state)  # the same seed, the same network
    assert reference.reference(train, "MLP", budget, seed=0, cache_dir=tmp_path) and calls == [0, 0]  # replaced


@pytest.mark.slow  # over 2 s on 2 cores
def test_concurrent_callers_train_the_reference_once(mnist, tmp_path, monkeypatch):
    """A sweep's coreset cells start together: the first trains, the others wait and load it."""
    train, _ = mnist
    calls = []
    real_train = reference.train_reference
    monkeypatch.setattr(reference, "train_reference", lambda *a: calls.append(a[3]) or real_train(*a))
    with ThreadPoolExecutor(3) as pool:  # flock excludes separate open files, threads too
        refs = list(pool.map(lambda _: reference.reference(train, "ConvNet", TINY, 0, tmp_path), range(3)))
    assert calls == [0]
    assert all(torch.equal(r.forgetting, refs[0].forgetting) for r in refs)


def test_cache_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("DC_CACHE", str(tmp_path / "a"))
    assert reference.resolve_cache_dir() == tmp_path / "a"
    assert reference.resolve_cache_dir(tmp_path / "b") == tmp_path / "b"
    monkeypatch.delenv("DC_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert reference.resolve_cache_dir() == tmp_path / "xdg" / "condense"


def test_whole_tests_one_network_per_seed(mnist, cache):
    train, test = mnist
    accs = whole(train, test, [0, 1], TINY, cache_dir=cache, eval_budget=EvalBudget(max_test=500))
    assert len(accs) == 2 and all(0 <= a <= 100 for a in accs)


def test_bad_requests_raise_config_error(mnist):
    train, _ = mnist
    with pytest.raises(ConfigError, match="magic"):
        select("magic", train, 1, 0)
    with pytest.raises(ConfigError, match="fewer"):
        select("random", train, 31, 0, budget=TINY)  # 300 images: 30 a class
    with pytest.raises(ConfigError):
        select("random", train, 0, 0)


@pytest.mark.slow  # over 2 s on 2 cores
def test_the_library_does_not_import_the_layers_above_it():
    import subprocess
    import sys

    code = ("import sys, pkgutil, importlib, condense\n"
            "for m in pkgutil.iter_modules(condense.__path__):\n"
            "    if m.name != '__main__': importlib.import_module('condense.' + m.name)\n"
            "print(sorted({n.split('.')[0] for n in sys.modules} & {'evaluation', 'orchestrator'}))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"


# --- end to end through the command line --------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(900)  # end to end: over the 300 s default on a busy machine
def test_every_method_runs_on_real_mnist_through_the_cli(tmp_path):
    from test_cli import cli

    small = ["--dataset", "MNIST", "--model", "ConvNet", "--ipc", "10", "--smoke", "--device", "cpu",
             "--num_eval", "1", "--epoch_eval_train", "10", "--max_train", "500", "--epoch_reference", "2",
             "--cache_dir", str(tmp_path / "cache")]
    trained = 0
    for method in (*METHODS, "whole"):
        out = tmp_path / method
        r = cli("--method", method, *small, "--save_path", str(out))
        assert r.returncode == 0, r.stderr[-2000:]
        trained += r.stdout.count("training reference")
        tag = "whole_MNIST_ConvNet" if method == "whole" else f"{method}_MNIST_ConvNet_10ipc"
        results = json.loads((out / f"acc_{tag}.json").read_text())
        assert results["reference_budget"]["epochs"] == 2 and results["reference_budget"]["max_train"] == 500
        accs = results["accuracies"]["ConvNet"]
        assert len(accs) == 1 and 0 <= accs[0] <= 100
        assert "±" in r.stdout.strip().splitlines()[-1]
        if method == "whole":
            assert "2 epochs" in r.stdout.strip().splitlines()[-1]
            continue
        syn = torch.load(out / f"syn_{tag}_exp0.pt", weights_only=True)
        assert syn["meta"]["method"] == method and syn["images"].shape[0] == 100
        assert (out / f"vis_{tag}_exp0.png").stat().st_size > 0
    assert trained == 1  # herding trained it; kcenter, forgetting and whole (exp 0) reused it
