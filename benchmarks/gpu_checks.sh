#!/usr/bin/env bash
# Every figure only a GPU can give, in one prepared run that fits one call of at most 420 s on one GPU.
#   bash benchmarks/gpu_checks.sh [LOG_DIR]                  (default LOG_DIR: gpu_logs)
# Steps in priority order, each with its own time limit and log (LOG_DIR/<step>.log); a step never
# runs past TOTAL_S (default 400 s; 380 in plumbing mode) from the start, so a slow one costs only the steps after it:
#   tests        the CUDA equivalence tests: the captured evaluation graph and its fallback, the
#                batched real gradients, the vectorised evaluation, precision (DC_TEST_DEVICE=cuda)
#   vs_original  ours against the original code, MNIST ConvNet ipc 1 (50 iterations, 2 nets x 300 epochs)
#   cell         the MNIST ConvNet ipc-1 cell at the paper's budget (5 runs x 1000 iterations,
#                20 networks x 1000 epochs), through the seed CLI
#   calibrate    the GPU's calibration (ConvNet, Table 2's probes), written where the cost model reads
#                it (orchestrator/calibrations/, or $DC_CALIBRATIONS) and copied to LOG_DIR/calibrations
#   estimate     the dry run's estimates with it: the Table 1 cell above, and Table 2
#   sweep        benchmarks/gpu_sweep.sh: a reduced Table 2 through Ray Tune, resources: auto
# then one summary table of every figure (printed, and LOG_DIR/summary.md). Exit 0 when every step
# ended 0; a step cut at its limit says so in the table and what it reached stays in its log.
#
# Plumbing mode, on any machine: DEVICE=cpu QUICK=1 bash benchmarks/gpu_checks.sh LOG_DIR runs every
# step with tiny budgets (under 3 minutes on 2 quiet cores; tests/test_gpu_checks.py, slow tier),
# calibrating into LOG_DIR/calibrations so that the committed calibrations stay untouched.
#
# On an offline GPU machine (docs/performance.md, "The GPU run") three git-ignored folders
# travel with the checkout: .gpu/whl (Ray's slimmed wheels, installed into /tmp/dc_site when Ray is
# missing), .gpu/data (the data root, used when DC_DATA is unset) and .gpu/DatasetCondensation (the
# original code; else ORIGINAL, else ../shared/anchors/DatasetCondensation).
# PYTHON: the interpreter (default .venv/bin/python when there is one, else python3).
set -u
logs=${1:-gpu_logs}
mkdir -p "$logs" && logs=$(cd "$logs" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 2
device=${DEVICE:-cuda}
quick=${QUICK:-0}
total=${TOTAL_S:-$([ "${QUICK:-0}" = 1 ] && echo 380 || echo 400)}
if [ -n "${PYTHON:-}" ]; then py=$PYTHON; elif [ -x .venv/bin/python ]; then py=$here/.venv/bin/python; else py=python3; fi
case $device in cpu|cuda|cuda:[0-9]*) ;; *) echo "gpu_checks: DEVICE=$device (allowed: cpu, cuda, cuda:N)" >&2; exit 2 ;; esac
case $quick in 0|1) ;; *) echo "gpu_checks: QUICK=$quick (allowed: 0, 1)" >&2; exit 2 ;; esac
export PYTHONUNBUFFERED=1 PYTHONPATH=$here${PYTHONPATH:+:$PYTHONPATH}
[ -z "${DC_DATA:-}" ] && [ -d .gpu/data ] && export DC_DATA=$here/.gpu/data
original=${ORIGINAL:-}
[ -z "$original" ] && [ -d .gpu/DatasetCondensation ] && original=$here/.gpu/DatasetCondensation
[ -z "$original" ] && original=$here/../shared/anchors/DatasetCondensation
t_start=$SECONDS

echo "gpu_checks: DEVICE=$device QUICK=$quick TOTAL_S=$total, logs in $logs, $(date -u +%FT%TZ)"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$logs/gpu.txt"
fi
$py -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available())" | tee "$logs/torch.txt"
if ! $py -c "import ray" 2>/dev/null && compgen -G ".gpu/whl/*.whl" >/dev/null; then
  # Ray from the carried wheels (docs/performance.md): a few seconds, offline
  $py -m pip install -q --no-index --no-deps --no-compile --target /tmp/dc_site .gpu/whl/*.whl \
    && export PYTHONPATH=/tmp/dc_site:$PYTHONPATH
fi
$py -c "import ray; print('ray', ray.__version__)" 2>/dev/null || echo "ray: not importable (the sweep step will fail)"

steps=() statuses=() seconds=()
step() {  # step NAME LIMIT CMD...: run CMD for at most LIMIT s and never past TOTAL_S; log LOG_DIR/NAME.log
  local name=$1 limit=$2; shift 2
  local left=$((total - (SECONDS - t_start) - 5))  # 5 s kept for the summary
  if [ "$left" -lt 10 ]; then
    echo "== $name: skipped, ${left} s left of ${total} s" | tee "$logs/$name.log"
    steps+=("$name") statuses+=("skipped (no time left)") seconds+=(0)
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $name (limit ${limit} s): $*"
  local t0=$SECONDS
  timeout -k 5 "$limit" "$@" 2>&1 | tee "$logs/$name.log"
  local code=${PIPESTATUS[0]}
  local status="ok"
  case $code in 0) ;; 124|137) status="cut at ${limit} s" ;; *) status="exit $code" ;; esac
  echo "== $name: $status after $((SECONDS - t0)) s"
  steps+=("$name") statuses+=("$status") seconds+=($((SECONDS - t0)))
}

cal_dir=""
if [ "$quick" = 1 ]; then
  # tiny budgets: the same commands, proving the plumbing, no figure worth reporting
  cal_dir=$logs/calibrations
  mkdir -p "$cal_dir" && cp orchestrator/calibrations/*.json "$cal_dir"/ 2>/dev/null
  export DC_CALIBRATIONS=$cal_dir
  tests=(tests/test_graph_fallback.py -k capture_fallback)
  vs=(--iterations 1 --nets 1 --epochs 0 --batch-real 4 --max-test 256)
  cell=(--smoke --Iteration 1 --num_exp 1 --num_eval 1 --epoch_eval_train 1 --batch_real 4)
  cal=(--threads 1 --repeats 1 --real-sizes 2 4)
  sweep=(--no-gpu-ok --iterations 1 --epochs 1 --num-eval 1 --max-test 100 --batch-real 4)
  limits=(60 120 90 60 30 150)  # generous: a busy 2-core machine is several times slower; TOTAL_S caps them
else
  tests=(tests/test_graphed.py tests/test_graph_fallback.py tests/test_speed_condense.py tests/test_speed_eval.py
         tests/test_precision.py)
  vs=(--iterations 50 --nets 2 --epochs 300)
  cell=()
  cal=()
  sweep=(--iterations 50 --epochs 300 --num-eval 2)
  limits=(60 90 100 40 15 110)
fi

step tests "${limits[0]}" env DC_TEST_DEVICE="$device" "$py" -m pytest -q -p no:cacheprovider "${tests[@]}"
step vs_original "${limits[1]}" "$py" benchmarks/vs_original.py --device "$device" --ipc 1 "${vs[@]}" --original "$original"
step cell "${limits[2]}" "$py" -m condense --dataset MNIST --model ConvNet --ipc 1 --eval_mode S --device "$device" \
  --save_path "$logs/cell_sets" "${cell[@]}"
step calibrate "${limits[3]}" "$py" benchmarks/calibrate.py --device "$device" --models ConvNet --sweep sweeps/table2.yaml "${cal[@]}"
written=$(sed -n 's/^wrote //p' "$logs/calibrate.log" | tail -1)
if [ -n "$written" ] && [ -f "$written" ] && [ -z "$cal_dir" ]; then
  mkdir -p "$logs/calibrations" && cp "$written" "$logs/calibrations/"  # to bring it back from the machine
fi
step estimate "${limits[4]}" bash -c "'$py' -m orchestrator.run sweeps/table1.yaml --dry-run | grep -E '^MNIST-ConvNet-ipc1-S-ours ' \
  && '$py' -m orchestrator.run sweeps/table2.yaml --dry-run | grep -E '^estimated' | sed 's/^/table 2: /'"
step sweep "${limits[5]}" env PYTHON="$py" OUT="$logs/sweep" bash benchmarks/gpu_sweep.sh "${sweep[@]}"

figures() {  # the figures of one step, from its log, on one line
  local log=$logs/$1.log
  case $1 in
    tests) grep -E '[0-9]+ (passed|failed|error)' "$log" | tail -1 ;;
    vs_original) grep -E '^(condensation|evaluation|cell) vs original|^accuracy' "$log" \
                   | sed -E 's/ +\(/ (/; s/; [0-9]+ and [0-9]+ timed\)/)/; s/; setup ours .*\)/)/' ;;
    cell) { grep -E '^Summary' "$log" || grep -E '^exp [0-9]+ iter' "$log" | tail -1 | sed 's/^/reached: /'; } \
            | sed -E 's/^Summary [^ ]+ //' ;;
    calibrate) { grep -E '^[0-9x]+ ConvNet:' "$log"; sed -n 's/^wrote /written: /p' "$log"; } ;;
    estimate) grep -E '^MNIST-ConvNet|^table 2: estimated' "$log" \
                | sed -E 's/^(MNIST-ConvNet-ipc1-S-ours) .* (est [0-9.]+ [a-z]+)$/\1 (paper budget): \2/; s/ \(calibration.*//' ;;
    sweep) { grep -E '^[0-9]+ cells:' "$log" | tail -1; grep -E '^wall:|^mean GPU' "$log"; } ;;
  esac 2>/dev/null | tr '\n' ';' | sed 's/;$//; s/;/; /g; s/|/\//g'
}

{
  gpu=$(head -1 "$logs/gpu.txt" 2>/dev/null | cut -d, -f1)
  echo "## gpu_checks summary (DEVICE=$device${gpu:+ on $gpu}, QUICK=$quick, $(sed 's/ |.*//' "$logs/torch.txt"); $((SECONDS - t_start)) s of ${total} s)"
  echo
  echo "| step | status | s | figures |"
  echo "|---|---|---|---|"
  for i in "${!steps[@]}"; do
    echo "| ${steps[$i]} | ${statuses[$i]} | ${seconds[$i]} | $(figures "${steps[$i]}") |"
  done
} | tee "$logs/summary.md"
for s in "${statuses[@]}"; do [ "$s" = ok ] || exit 1; done
exit 0
