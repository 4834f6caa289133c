"""The vectorised evaluation is the serial one, batched: same draws, same updates, same accuracies."""
import pytest
import torch

from condense.augment import augment
from condense.networks import build_network
from condense.synthetic import SyntheticSet, seeded_generator
from evaluation import protocol
from evaluation.protocol import evaluate, parallel_seeds
from evaluation.train import EvalBudget, train_network, train_networks

SEEDS = (3, 7, 11)


def real_subset(train, ipc):
    idx = torch.cat([torch.nonzero(train.labels == c).flatten()[:ipc] for c in range(10)])
    return SyntheticSet(train.images[idx], train.labels[idx], "MNIST")


@pytest.mark.parametrize("strategy", ["crop_scale_rotate", "crop_noise"])
def test_grouped_augmentation_is_each_group_on_its_own(strategy):
    images = torch.randn(3 * 8, 2, 16, 16)
    together = augment(images, strategy, [seeded_generator(s) for s in SEEDS])
    alone = torch.cat([augment(group, strategy, seeded_generator(s)) for group, s in zip(images.split(8), SEEDS)])
    assert torch.allclose(together, alone, atol=1e-6)
    assert not torch.allclose(together[:8], together[8:16])  # the seeds draw differently


def test_sgd_on_stacked_tensors_is_k_independent_optimisers():
    torch.manual_seed(0)
    weights = [torch.randn(5, 4) for _ in range(3)]
    grads = [[torch.randn(5, 4) for _ in range(3)] for _ in range(4)]
    stacked = torch.stack(weights).requires_grad_(True)
    alone = [w.clone().requires_grad_(True) for w in weights]
    opts = [torch.optim.SGD([p], lr=0.01, momentum=0.9, weight_decay=5e-4) for p in [stacked, *alone]]
    for step in grads:
        stacked.grad = torch.stack(step)
        for p, g in zip(alone, step):
            p.grad = g.clone()
        for opt in opts:
            opt.step()
    assert all(torch.equal(stacked[k], alone[k]) for k in range(3))


def nets_for(model, train, seeds, device):
    gens = [seeded_generator(s, device) for s in seeds]
    return [build_network(model, train, g, device) for g in gens], gens


@pytest.mark.parametrize("model", ["ConvNetW32", "MLP"])
def test_vectorised_training_matches_serial_trainings(mnist_small, model, device):
    """Same initial weights and draws: same per-step losses, weights and generator states."""
    train, _ = mnist_small
    syn = real_subset(train, 1).to(device)
    # 10 images in batches of 4 (4, 4, 2), 4 (+1) epochs: several steps, the lr drop and a fresh optimiser
    budget = EvalBudget(epochs=4, batch_train=4)
    serial, serial_gens = nets_for(model, train, SEEDS, device)
    batched, batched_gens = nets_for(model, train, SEEDS, device)
    serial_losses = torch.stack([train_network(net, syn.images, syn.labels, budget, 4, "crop_scale_rotate", g)
                                 for net, g in zip(serial, serial_gens)])
    batched_losses = train_networks(batched, syn.images, syn.labels, budget, 4, "crop_scale_rotate", batched_gens)
    assert batched_losses.shape == (3, 15)
    assert torch.allclose(batched_losses, serial_losses, rtol=1e-4, atol=1e-5)
    for a, b in zip(serial, batched):
        for (name, p), q in zip(a.named_parameters(), b.parameters()):
            assert torch.allclose(p, q, rtol=1e-4, atol=1e-5), name
    for g, h in zip(serial_gens, batched_gens):
        assert torch.equal(g.get_state(), h.get_state())  # every seed consumed its own draws alike
    assert not torch.allclose(batched_losses[0], batched_losses[1])


def test_evaluate_vectorised_equals_serial(mnist_small, device):
    train, test = mnist_small
    test = test.to(device)
    syn = real_subset(train, 2)
    budget = EvalBudget(epochs=6, max_test=300)
    seeds = [0, 1, 2]
    serial = evaluate(syn, test, "ConvNetW32", seeds, budget, vectorised=False)
    assert evaluate(syn, test, "ConvNetW32", seeds, budget, vectorised=True) == serial
    # groups of two and a single leftover seed
    reported = []
    assert evaluate(syn, test, "ConvNetW32", seeds, budget, vectorised=True, max_parallel=2,
                    on_result=lambda s, a: reported.append(s)) == serial
    assert reported == seeds


@pytest.mark.parametrize("model", ["ConvNetW32BN", pytest.param("AlexNetBN", marks=pytest.mark.slow)])
def test_batchnorm_vectorised_keeps_each_seeds_running_statistics(mnist_small, model):
    """BatchNorm in the vmapped trainer: each seed's batch statistics, its own running statistics
    (updated in train mode, written back), and the same eval-mode test accuracies as serial training.
    In float64: BN over 4-8 images amplifies float32 rounding within a few steps, and the point here is
    that the maths is the same."""
    train, test = mnist_small
    syn = real_subset(train, 2)  # 20 images in batches of 8 (8, 8, 4): BN sees a short last batch
    images = syn.images.double()
    budget = EvalBudget(epochs=2, batch_train=8, max_test=200)
    serial, serial_gens = nets_for(model, train, SEEDS, "cpu")
    batched, batched_gens = nets_for(model, train, SEEDS, "cpu")
    for net in (*serial, *batched):
        net.double()
    serial_losses = torch.stack([train_network(net, images, syn.labels, budget, 2, "none", g)
                                 for net, g in zip(serial, serial_gens)])
    batched_losses = train_networks(batched, images, syn.labels, budget, 2, "none", batched_gens)
    assert torch.allclose(batched_losses, serial_losses, rtol=1e-9, atol=1e-10)
    for a, b in zip(serial, batched):
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.allclose(x.double(), y.double(), rtol=1e-9, atol=1e-10), name
        running = [x for name, x in b.named_buffers() if name.endswith("running_var")]
        assert running and not any(torch.equal(x, torch.ones_like(x)) for x in running)  # updated, not left at init
    assert parallel_seeds(model, train.info, 20, budget, torch.device("cpu"), max_parallel=3) == 3
    seeds = [0, 1]
    assert evaluate(syn, test, model, seeds, budget, vectorised=True) == \
        evaluate(syn, test, model, seeds, budget, vectorised=False)


def test_parallel_seeds_from_memory_or_override(mnist_small):
    train, _ = mnist_small
    cpu = torch.device("cpu")
    auto = parallel_seeds("ConvNet", train.info, 10, EvalBudget(), cpu)
    assert auto >= 1
    assert parallel_seeds("ConvNet", train.info, 10, EvalBudget(), cpu, max_parallel=3) == 3
    # a bigger batch needs more memory per seed, so no more seeds fit
    assert parallel_seeds("ConvNet", train.info, 256, EvalBudget(), cpu) <= auto


def test_a_shared_gpu_plans_seeds_from_its_share_of_the_total_not_the_free_memory(monkeypatch):
    """A faked CUDA device with 80 GB, 1 GB of it free at this instant: a trial with a quarter of the
    GPU plans with half of 20 GB, whatever is free; without a share, with half of what is free."""
    from condense.data import info as dataset_info
    from evaluation import protocol
    free, total = 1 * 2**30, 80 * 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, total))
    mnist, gpu = dataset_info("MNIST"), torch.device("cuda")
    with torch.device("meta"):
        net = protocol.networks.build("ConvNet", mnist.channels, mnist.num_classes, mnist.image_size)
    per_seed = protocol.training_bytes(net, (mnist.channels, *mnist.image_size), 10)
    shared = parallel_seeds("ConvNet", mnist, 10, EvalBudget(), gpu, memory_share=0.25)
    assert shared == int(0.25 * total) // 2 // per_seed and shared > 1
    assert parallel_seeds("ConvNet", mnist, 10, EvalBudget(), gpu) == max(1, free // 2 // per_seed)
    assert parallel_seeds("ConvNet", mnist, 10, EvalBudget(), gpu, memory_share=0.5) == int(0.5 * total) // 2 // per_seed
    # on the CPU a share means nothing: the free memory decides
    monkeypatch.setattr(protocol, "_free_memory", lambda device: 4 * per_seed)
    assert parallel_seeds("ConvNet", mnist, 10, EvalBudget(), torch.device("cpu"), memory_share=0.25) == 2


def test_the_default_vectorises_on_accelerators_only(mnist_small, monkeypatch, device):
    """On the CPU vmapped seeds measured slower than serial ones: the default trains them serially."""
    train, test = mnist_small
    calls = []
    # each returns its (empty) loss history, as the real trainers do
    monkeypatch.setattr(protocol, "train_networks",
                        lambda nets, *a: calls.append(len(nets)) or torch.zeros(len(nets), 0))
    monkeypatch.setattr(protocol, "train_network", lambda net, *a: calls.append(1) or torch.zeros(0))
    evaluate(real_subset(train, 1), test.to(device), "ConvNetW32", [0, 1, 2], EvalBudget(epochs=1, max_test=10))
    assert calls == ([1, 1, 1] if device.type == "cpu" else [3])
