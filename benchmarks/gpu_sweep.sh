#!/usr/bin/env bash
# A reduced Table 2 (MNIST, 1 image/class, six models, pool M) through `python -m orchestrator.run`
# with resources: auto on this machine's GPU(s), sampling nvidia-smi's utilisation while it runs.
# Prints the cells, the wall time and the mean GPU utilisation.
#   DC_DATA=/path/to/data bash benchmarks/gpu_sweep.sh [--iterations 100] [--epochs 300] [--num-eval 2]
#       [--max-test N] [--batch-real N] [--gpu-share F] [--no-gpu-ok]
# Without nvidia-smi it stops at once (exit 2); --no-gpu-ok runs it anyway (plumbing only, no figure
# worth reporting). PYTHON picks the interpreter (default python3); OUT the output root.
set -u
iterations=100 epochs=300 num_eval=2 max_test="" batch_real="" share="" no_gpu_ok=0
while [ $# -gt 0 ]; do
  case $1 in
    --iterations) iterations=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --num-eval) num_eval=$2; shift 2 ;;
    --max-test) max_test=$2; shift 2 ;;
    --batch-real) batch_real=$2; shift 2 ;;
    --gpu-share) share=$2; shift 2 ;;
    --no-gpu-ok) no_gpu_ok=1; shift ;;
    *) echo "gpu_sweep: unknown argument $1 (allowed: --iterations --epochs --num-eval --max-test --batch-real --gpu-share --no-gpu-ok)" >&2; exit 2 ;;
  esac
done
gpu=1
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  [ $no_gpu_ok = 1 ] || { echo "gpu_sweep: no GPU (nvidia-smi missing or failing): this benchmark measures a GPU; --no-gpu-ok runs it anyway" >&2; exit 2; }
  gpu=0
fi
py=${PYTHON:-python3}
here=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$(mktemp -d /tmp/gpu_sweep.XXXXXX)}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH=$here${PYTHONPATH:+:$PYTHONPATH}
sweep=$out/table2_reduced.yaml
{
  echo "include: [$here/sweeps/table2.yaml]"
  echo "num_exp: 1"
  echo "num_eval: $num_eval"
  echo "budget: {iterations: $iterations${batch_real:+, batch_real: $batch_real}}"
  echo "eval_budget: {epochs: $epochs${max_test:+, max_test: $max_test}}"
  echo "checkpoint_every: 1000"
} > "$sweep"
[ $gpu = 1 ] && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
samples=$out/utilisation.csv
pid_smi=""
if [ $gpu = 1 ]; then
  nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -l 1 > "$samples" &
  pid_smi=$!
fi
t0=$(date +%s.%N)
(cd "$here" && $py -m orchestrator.run "$sweep" --output "$out/runs" ${share:+--gpu-share $share}) 2>&1 | tee "$out/sweep.log"
code=${PIPESTATUS[0]}
t1=$(date +%s.%N)
[ -n "$pid_smi" ] && kill "$pid_smi" 2>/dev/null && wait "$pid_smi" 2>/dev/null
echo "== gpu_sweep: reduced Table 2 ($iterations iterations, $num_eval networks x $epochs epochs, pool M), exit $code"
grep -E '^sweep ' "$out/sweep.log" | head -1
grep -E '^[0-9]+ cells:' "$out/sweep.log" | tail -1
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "wall: %.0f s\n", b - a }'
if [ $gpu = 1 ]; then
  awk '{ s += $1; n++ } END { if (n) printf "mean GPU utilisation: %.1f %% (%d samples, 1 s apart)\n", s / n, n; else print "mean GPU utilisation: no samples" }' "$samples"
else
  echo "mean GPU utilisation: n/a (no GPU)"
fi
echo "logs and results: $out"
exit "$code"
