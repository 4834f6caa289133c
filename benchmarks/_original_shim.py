"""Runs the original code's ``main.py`` unchanged and times its phases from outside (used by
vs_original.py; nothing of the original is copied here).

    python _original_shim.py ORIGINAL_DIR EPOCHS MAX_TEST -- <main.py arguments>

It wraps two of the original's functions before ``main`` imports them by name:
- ``get_network``: every network it builds marks the start of a phase, an evaluation network's (the
  next event is its ``evaluate_synset``) or an outer iteration's (the training network of each one);
- ``evaluate_synset``: records each network's test accuracy, and trains for EPOCHS epochs (the
  original's ``main`` sets 1000 or 300 itself and has no flag for it; its own loop then trains
  EPOCHS + 1); with MAX_TEST a number (not ``all``), it tests on the first MAX_TEST test images only
  (a plumbing run's budget; the paper's figures test on all).
Each interval between two marks is charged to the phase that opened it (a visualisation written after
an evaluation counts as evaluation); what comes before the first mark (data loading, sorting the real
images per class) is setup. The process gets the same glibc allocator setting as our side
(``condense.runtime.keep_freed_memory``). The result is one ``RESULT {json}`` line on stdout.
"""
from __future__ import annotations

import json
import sys
import time


def split(events: list[tuple[str, float]], start: float, end: float) -> tuple[dict, dict]:
    """Seconds and counts per phase: each network mark opens an interval that runs to the next
    network mark (or the end), charged to evaluation when an ``evaluate_synset`` follows the mark."""
    nets = [(i, t) for i, (kind, t) in enumerate(events) if kind == "net"]
    phases = {"setup": (nets[0][1] if nets else end) - start, "condensation": 0.0, "evaluation": 0.0}
    counts = {"condensation": 0, "evaluation": 0}
    for j, (i, t) in enumerate(nets):
        phase = "evaluation" if i + 1 < len(events) and events[i + 1][0] == "eval" else "condensation"
        phases[phase] += (nets[j + 1][1] if j + 1 < len(nets) else end) - t
        counts[phase] += 1
    return phases, counts


def first(loader, n: int) -> list:
    """The batches of ``loader`` holding its first ``n`` samples (the last one cut)."""
    batches, seen = [], 0
    for x, y in loader:
        if seen >= n:
            break
        batches.append((x[:n - seen], y[:n - seen]))
        seen += len(x)
    return batches


def main() -> None:
    original, epochs, max_test = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    argv = sys.argv[sys.argv.index("--") + 1:]
    sys.path.insert(0, original)
    import torch
    import utils  # the original's

    from condense.runtime import keep_freed_memory

    keep_freed_memory()  # the same allocator setting as our side: a process setting, not the code's

    events: list[tuple[str, float]] = []  # ("net" | "eval", time)
    accs: list[float] = []
    device_sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    build, evaluate = utils.get_network, utils.evaluate_synset

    def get_network(*args, **kwargs):
        device_sync()  # the previous phase's work counts where it was queued
        events.append(("net", time.perf_counter()))
        return build(*args, **kwargs)

    def evaluate_synset(it_eval, net, images, labels, testloader, args):
        events.append(("eval", time.perf_counter()))
        args.epoch_eval_train = epochs
        if max_test != "all":
            testloader = first(testloader, int(max_test))
        out = evaluate(it_eval, net, images, labels, testloader, args)
        accs.append(100.0 * float(out[2]))
        return out

    utils.get_network, utils.evaluate_synset = get_network, evaluate_synset
    import main as original_main  # binds the wrappers: it does `from utils import ...`

    sys.argv = ["main.py", *argv]
    start = time.perf_counter()
    original_main.main()
    device_sync()
    end = time.perf_counter()

    phases, counts = split(events, start, end)
    print("RESULT " + json.dumps({"seconds": end - start, "phases": phases, "counts": counts, "accs": accs,
                                  "device": "cuda" if torch.cuda.is_available() else "cpu"}), flush=True)


if __name__ == "__main__":
    main()
