"""benchmarks/gpu_checks.sh, the one prepared GPU run, keeps working: its plumbing mode (DEVICE=cpu
QUICK=1, tiny budgets) runs every step on the CPU, ends with the summary table, and calibrates into
its log folder, never into the committed calibrations."""
import os
import subprocess
import sys

import pytest

from conftest import REPO, data_root

STEPS = ["tests", "vs_original", "cell", "calibrate", "estimate", "sweep"]


@pytest.mark.slow
@pytest.mark.timeout(900)  # a few minutes on 2 quiet cores, more on a busy machine
def test_gpu_checks_runs_every_step_in_plumbing_mode(tmp_path):
    committed = {p.name: p.read_bytes() for p in (REPO / "orchestrator" / "calibrations").glob("*.json")}
    logs = tmp_path / "logs"
    env = {**os.environ, "DEVICE": "cpu", "QUICK": "1", "PYTHON": sys.executable, "DC_DATA": str(data_root())}
    env.pop("DC_CALIBRATIONS", None)
    # the original code lives beside the shared data (../shared/anchors), wherever the clone is
    original = env.get("ORIGINAL") or str(data_root().parent / "anchors" / "DatasetCondensation")
    if not os.path.isfile(os.path.join(original, "main.py")):
        pytest.skip(f"the original code (step vs_original) is not at {original}: set ORIGINAL")
    env["ORIGINAL"] = original
    run = subprocess.run(["bash", "benchmarks/gpu_checks.sh", str(logs)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=850)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    summary = (logs / "summary.md").read_text()
    assert summary in run.stdout and "summary" in summary.splitlines()[0]
    table = [[c.strip() for c in line.strip().strip("|").split("|")] for line in summary.splitlines()
             if line.startswith("|") and "---" not in line]
    assert table[0] == ["step", "status", "s", "figures"]
    rows = {name: rest for name, *rest in table[1:]}
    assert list(rows) == STEPS, summary
    assert all(status == "ok" for status, _, _ in rows.values()), summary
    assert "passed" in rows["tests"][2] and "failed" not in rows["tests"][2]
    assert "cell vs original:" in rows["vs_original"][2] and "mean =" in rows["cell"][2]
    assert "ConvNet:" in rows["calibrate"][2] and str(logs / "calibrations") in rows["calibrate"][2]
    assert "est " in rows["estimate"][2] and "device-hours" in rows["estimate"][2]
    assert "6 cells: 6 ok" in rows["sweep"][2]
    assert {p.name: p.read_bytes() for p in (REPO / "orchestrator" / "calibrations").glob("*.json")} == committed
    for step in STEPS:
        assert (logs / f"{step}.log").stat().st_size > 0
