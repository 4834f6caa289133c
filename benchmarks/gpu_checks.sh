#!/usr/bin/env bash
# What only a GPU can show, in one script: the equivalence tests on CUDA (the captured evaluation
# graph, the batched real gradients, precision), the benchmarks on CUDA, ours against the original
# code, the GPU's calibration for the cost estimate, and MNIST ipc-1 runs at a reduced and at the
# paper's budget. The steps after the tests take about 12 minutes: give each slot what it fits.
#   DC_DATA=/path/to/data bash benchmarks/gpu_checks.sh [LOG_DIR]
# Each step has its own time limit, so one slow step cannot take the others' results with it.
set -u
logs=${1:-gpu_logs}
mkdir -p "$logs"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
py=${PYTHON:-python3}
step() {  # step NAME SECONDS CMD...: run with a limit, log to LOG_DIR/NAME.log
    local name=$1 limit=$2; shift 2
    echo "== $name (limit ${limit}s): $*"
    local t0=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee "$logs/$name.log"
    echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - t0)) s"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$py -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
step tests 150 env DC_TEST_DEVICE=cuda $py -m pytest -q -p no:cacheprovider tests/test_speed_condense.py \
  tests/test_speed_eval.py tests/test_graphed.py tests/test_precision.py
step condense_step 80 $py benchmarks/condense_step.py --device cuda --ipc 1 10 --batch-real 256 --inner-loop 50 --repeats 3
step eval_seeds 150 $py benchmarks/eval_seeds.py --device cuda --epochs 300 --test 10000 --graphed
cli="$py -m condense --dataset MNIST --model ConvNet --ipc 1 --eval_mode S --device cuda --save_path /tmp/dc_runs"
step reduced 60 $cli --Iteration 200 --num_exp 1 --num_eval 5
step paper_budget 150 $cli --num_exp 2
# ours vs the original (../shared/anchors copied along; its evaluation is CPU-bound: give it the cores)
step vs_original 300 $py benchmarks/vs_original.py --device cuda --ipc 1 --iterations 100 --nets 2
step calibrate 120 $py benchmarks/calibrate.py --device cuda --models ConvNet
