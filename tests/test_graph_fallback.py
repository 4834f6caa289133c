"""The CUDA-graph evaluation is safe by default: a capture or replay that raises falls back to the
eager trainer from the same start (the result is all eager, equal to it exactly), streams and graphs
are asked of the run's device, a failure never leaves the process on the capture stream, the graph's
memory is planned, and DC_NO_CUDA_GRAPH=1 turns it off.

On the CPU ``FakeCuda`` stands in for torch.cuda's streams, device contexts and graphs (the warm-up
and the captured step then run for real on the CPU); with DC_TEST_DEVICE=cuda the last test forces a
real capture to fail on the GPU (benchmarks/gpu_checks.sh)."""
import logging
from contextlib import contextmanager

import pytest
import torch

from condense.data import info as dataset_info
from condense.networks import build_network
from condense.synthetic import SyntheticSet, seeded_generator
from evaluation import graphed, protocol
from evaluation.protocol import evaluate, parallel_seeds
from evaluation.train import EvalBudget, train_networks

SEEDS = (3, 7, 11)


class FakeStream:
    def __init__(self, name, device):
        self.name, self.device = name, device

    def wait_stream(self, other):
        pass


class FakeGraph:
    def __init__(self, cuda):
        self.cuda = cuda

    def capture_begin(self):
        self.cuda.log("capture_begin")
        if self.cuda.fail == "begin":
            raise RuntimeError("injected: capture_begin failed")
        self.cuda.capturing = True

    def capture_end(self):
        if not self.cuda.capturing:
            raise RuntimeError("no capture underway")
        self.cuda.capturing = False
        if self.cuda.fail == "end":
            raise RuntimeError("injected: the capture was invalidated")

    def replay(self):
        self.cuda.log("replay")
        self.cuda.replays += 1
        if self.cuda.fail == "replay" and self.cuda.replays == 2:
            raise RuntimeError("injected: replay failed")


class FakeCuda:
    """torch.cuda's device contexts, streams and graphs on the CPU: it keeps a current device and each
    device's current stream (the stream context switches device as torch's does), logs which device
    and stream every request sees, and fails where told (``fail``: "begin", "end" or "replay")."""

    def __init__(self, fail=None, current_device="cuda:0"):
        self.fail, self.device_now = fail, torch.device(current_device)
        self.current = {}  # device -> its current stream
        self.asked = []  # (what, device asked or current, current stream's name)
        self.capturing, self.replays = False, 0

    def install(self, monkeypatch):
        for name in ("device", "stream", "current_stream", "Stream", "CUDAGraph", "synchronize"):
            monkeypatch.setattr(torch.cuda, name, getattr(self, name))

    def stream_of(self, device):
        return self.current.get(device, FakeStream("default", device))

    def log(self, what, device=None):
        device = self.device_now if device is None else device
        self.asked.append((what, device, self.stream_of(device).name))

    @contextmanager
    def device(self, device):
        self.log("device", device)
        before, self.device_now = self.device_now, torch.device(device)
        try:
            yield
        finally:
            self.device_now = before

    @contextmanager
    def stream(self, stream):
        before_device, before = self.device_now, self.current.get(stream.device)
        self.device_now, self.current[stream.device] = stream.device, stream
        try:
            yield
        finally:
            self.device_now = before_device
            if before is None:
                del self.current[stream.device]
            else:
                self.current[stream.device] = before

    def synchronize(self, device=None):
        self.log("synchronize", device)

    def current_stream(self, device=None):
        self.log("current_stream", device)
        return self.stream_of(self.device_now if device is None else device)

    def Stream(self, device=None):  # noqa: N802 (torch's name)
        self.log("Stream", device)
        return FakeStream("side", self.device_now if device is None else device)

    def CUDAGraph(self):  # noqa: N802 (torch's name)
        self.log("CUDAGraph")
        return FakeGraph(self)


def failing_step(cuda, step):
    """``step``, failing while captured when ``cuda.fail`` is "step" (an op the capture refuses)."""
    def run(*args):
        if cuda.fail == "step" and cuda.capturing:
            raise RuntimeError("injected: operation not permitted when stream is capturing")
        return step(*args)
    return run


def real_subset(train, ipc):
    idx = torch.cat([torch.nonzero(train.labels == c).flatten()[:ipc] for c in range(10)])
    return SyntheticSet(train.images[idx], train.labels[idx], "MNIST")


def group(model, train, device):
    gens = [seeded_generator(s, device) for s in SEEDS]
    return [build_network(model, train, g, device) for g in gens], gens


@pytest.mark.parametrize("where", ["begin", "step", "end", "replay"])
def test_capture_fallback_trains_the_group_eagerly_from_the_same_start(mnist_small, monkeypatch, caplog, where):
    """Capture failing at its start, in the captured step, at its end, or the second replay failing:
    the group's losses, weights and generators equal the eager trainer's exactly, and one warning
    names the error."""
    train, _ = mnist_small
    syn = real_subset(train, 1)
    # 5 epochs of one step: 3 warm-up steps, the captured one, 2 replays (the fake runs the captured
    # step); the MLP keeps it fast, the fallback does not depend on the architecture
    budget, epochs, strategy = EvalBudget(epochs=4), 4, "crop_scale_rotate"
    eager, eager_gens = group("MLP", train, "cpu")
    eager_losses = train_networks(eager, syn.images, syn.labels, budget, epochs, strategy, eager_gens)
    cuda = FakeCuda(fail=where)
    cuda.install(monkeypatch)
    monkeypatch.setattr(graphed.StaticTraining, "step", failing_step(cuda, graphed.StaticTraining.step))
    nets, gens = group("MLP", train, "cpu")
    with caplog.at_level(logging.WARNING, logger="evaluation.graphed"):
        losses = graphed.train_networks_graphed(nets, syn.images, syn.labels, budget, epochs, strategy, gens)
    assert torch.equal(losses, eager_losses)
    for a, b in zip(eager, nets):
        for (name, p), q in zip(a.named_parameters(), b.parameters()):
            assert torch.equal(p, q), name
    for g, h in zip(eager_gens, gens):
        assert torch.equal(g.get_state(), h.get_state())
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "injected" in warnings[0] and "\n" not in warnings[0], warnings
    assert cuda.replays == (2 if where == "replay" else 0)
    assert not cuda.capturing and cuda.current == {} and cuda.device_now == torch.device("cuda:0")


def test_capture_fallback_through_evaluate_gives_the_eager_accuracies(mnist_small, monkeypatch, caplog):
    """``evaluate`` on a graphable group whose capture fails reports what the eager path reports."""
    train, test = mnist_small
    syn, budget = real_subset(train, 1), EvalBudget(epochs=4, max_test=300)
    eager = evaluate(syn, test, "MLP", [0, 1, 2], budget, vectorised=True, max_parallel=3)
    FakeCuda(fail="begin").install(monkeypatch)
    monkeypatch.setattr(protocol, "_graphable", lambda *a: True)
    with caplog.at_level(logging.WARNING, logger="evaluation.graphed"):
        assert evaluate(syn, test, "MLP", [0, 1, 2], budget, vectorised=True, max_parallel=3) == eager
    assert "capture_begin failed" in caplog.text


@pytest.mark.parametrize("fail", [None, "begin", "step"])
def test_streams_and_graphs_are_asked_of_the_runs_device(fail):
    """With cuda:0 current and the run on cuda:1: the device context, the side stream, the graph and the
    capture are on cuda:1, the warm-up and capture on its side stream, the replays on its current
    stream; afterwards (or after a failed capture) cuda:0 is current again and no stream is switched."""
    cuda, seen = FakeCuda(fail=fail), []
    run = torch.device("cuda:1")
    with pytest.MonkeyPatch.context() as mp:
        cuda.install(mp)

        step = failing_step(cuda, lambda: cuda.log("step"))

        def replay(graph):
            cuda.log("replays")
            graph.replay()

        if fail:
            with pytest.raises(RuntimeError, match="injected"):
                graphed.on_graph(run, lambda: cuda.log("warm_up"), step, replay)
        else:
            graphed.on_graph(run, lambda: cuda.log("warm_up"), step, replay)
        seen = list(cuda.asked)
    assert {device for _, device, _ in seen} == {run}, seen
    where = {what: stream for what, _, stream in seen}
    assert where["warm_up"] == where["capture_begin"] == "side"
    assert [what for what, _, _ in seen if what == "Stream"] == ["Stream"]
    if fail:
        assert "step" not in where and "replays" not in where  # the failure is where it stopped
    else:
        assert where["step"] == "side" and where["replays"] == where["replay"] == "default"
    assert cuda.current == {} and cuda.device_now == torch.device("cuda:0") and not cuda.capturing


def test_static_training_keeps_its_buffers_on_the_images_device(mnist_small):
    """Every buffer the step reads or writes lives where the images are (on CUDA: the run's device)."""
    train, _ = mnist_small
    syn = real_subset(train, 1)
    nets, gens = group("MLP", train, "cpu")
    run = graphed.StaticTraining(nets, syn.images, syn.labels, EvalBudget(epochs=2), 2, "crop_scale_rotate", gens)
    tensors = [run.lr, run.step_index, run.losses, run.orders, *run.drawn.values(), *run.weights, *run.momentum]
    assert {t.device for t in tensors} == {syn.images.device}


def test_the_graph_memory_counts_its_pool_the_warm_up_cache_and_the_draws(mnist_small):
    """``memory_bytes`` is twice the eager estimate plus exactly the bytes of the drawn-ahead buffers
    that ``StaticTraining`` holds."""
    train, _ = mnist_small
    syn = real_subset(train, 2)
    for strategy in ("crop_scale_rotate", "none"):
        nets, gens = group("MLP", train, "cpu")
        run = graphed.StaticTraining(nets[:1], syn.images, syn.labels, EvalBudget(epochs=8), 8, strategy, gens[:1])
        drawn = sum(t.numel() * t.element_size() for t in [run.orders, *run.drawn.values()])
        assert graphed.memory_bytes(1000, (1, 28, 28), len(syn.images), 8, strategy) == 2000 + drawn
    assert graphed.memory_bytes(0, (1, 28, 28), 10, 1000, "crop_scale_rotate") > 0


def test_a_graphed_group_never_plans_past_its_share_of_the_gpu(monkeypatch):
    """A faked 80 GB device, 1 GB free: a trial with a quarter of it plans its graphed groups with the
    graph's memory, from half of its share, whatever is free; without a graph, the eager estimate."""
    free, total = 1 * 2**30, 80 * 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, total))
    mnist, gpu = dataset_info("MNIST"), torch.device("cuda:1")
    with torch.device("meta"):
        net = protocol.networks.build("ConvNet", mnist.channels, mnist.num_classes, mnist.image_size)
    budget, share, strategy = EvalBudget(), 0.25, "crop_scale_rotate"
    eager_seed = protocol.training_bytes(net, (1, 28, 28), 10)
    graph_seed = graphed.memory_bytes(eager_seed, (1, 28, 28), 10, budget.epochs_for(strategy), strategy)
    k = parallel_seeds("ConvNet", mnist, 10, budget, gpu, memory_share=share, strategy=strategy)
    assert k == int(share * total) // 2 // graph_seed and k * graph_seed <= share * total / 2
    plain = parallel_seeds("ConvNet", mnist, 10, budget, gpu, memory_share=share)
    assert plain == int(share * total) // 2 // eager_seed and 1 < k < plain
    # no graph: ipc 50 (two batches an epoch), bf16, or the switch off
    assert parallel_seeds("ConvNet", mnist, 500, budget, gpu, memory_share=share, strategy=strategy) == \
        int(share * total) // 2 // protocol.training_bytes(net, (1, 28, 28), 256)
    bf16 = EvalBudget(precision="bf16")
    assert parallel_seeds("ConvNet", mnist, 10, bf16, gpu, memory_share=share, strategy=strategy) == plain
    monkeypatch.setenv("DC_NO_CUDA_GRAPH", "1")
    assert parallel_seeds("ConvNet", mnist, 10, budget, gpu, memory_share=share, strategy=strategy) == plain


@pytest.mark.parametrize("value,on", [(None, True), ("", True), ("0", True), ("1", False), ("yes", False)])
def test_dc_no_cuda_graph_turns_the_graph_path_off(monkeypatch, value, on):
    if value is None:
        monkeypatch.delenv("DC_NO_CUDA_GRAPH", raising=False)
    else:
        monkeypatch.setenv("DC_NO_CUDA_GRAPH", value)
    assert protocol._graphable(torch.device("cuda"), 10, EvalBudget(), "crop_scale_rotate") is on
    assert not protocol._graphable(torch.device("cpu"), 10, EvalBudget(), "crop_scale_rotate")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="a real capture needs CUDA (gpu_checks.sh runs it)")
def test_capture_fallback_on_a_real_gpu(mnist_small, device, monkeypatch, caplog):
    """A host sync inside the captured step (forbidden while capturing) fails the real capture: the
    group trains eagerly, equal to the eager trainer, and the default stream is current again."""
    if device.type != "cuda":
        pytest.skip("DC_TEST_DEVICE=cuda runs this on the GPU")
    train, _ = mnist_small
    syn = real_subset(train, 1).to(device)
    budget, epochs, strategy = EvalBudget(epochs=6), 6, "crop_scale_rotate"
    eager, eager_gens = group("ConvNetW32", train, device)
    eager_losses = train_networks(eager, syn.images, syn.labels, budget, epochs, strategy, eager_gens)
    step = graphed.StaticTraining.step

    def syncing_step(self):
        step(self)
        if torch.cuda.is_current_stream_capturing():
            self.losses.sum().item()  # a host sync: not allowed in a capture

    monkeypatch.setattr(graphed.StaticTraining, "step", syncing_step)
    default = torch.cuda.current_stream(device)
    nets, gens = group("ConvNetW32", train, device)
    with caplog.at_level(logging.WARNING, logger="evaluation.graphed"):
        losses = graphed.train_networks_graphed(nets, syn.images, syn.labels, budget, epochs, strategy, gens)
    assert "CUDA graph" in caplog.text
    assert torch.cuda.current_stream(device) == default and not torch.cuda.is_current_stream_capturing()
    assert torch.allclose(losses, eager_losses, rtol=1e-5, atol=1e-6)
    for g, h in zip(eager_gens, gens):
        assert torch.equal(g.get_state(), h.get_state())
