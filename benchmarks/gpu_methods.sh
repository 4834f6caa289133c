#!/usr/bin/env bash
# DSA and DM on real MNIST, ConvNet, mode S, at the paper's budgets (one experiment each, 20 networks
# x 1000 epochs per evaluation), with the seed README's augmentation (--dsa_strategy auto: no flip
# for digits), for the table beside the published DSA numbers. DSA at ipc 10 runs 200 of its 1000
# iterations (10 outer x 50 inner steps each).
#   DC_DATA=/path/to/data bash benchmarks/gpu_methods.sh [LOG_DIR [STEP ...]]
# STEPs: dsa1 dm1 dm10 dsa10 (default all; together they need more than one 10-minute slot, so name
# the ones a slot fits). Each step has its own time limit and prints what it reached if cut off.
# DEVICE (default cuda) and EXTRA (flags after each step's own, so they win, e.g. "--Iteration 2 --num_eval 1 --epoch_eval_train 2"
# to try the plumbing on a CPU) change every step.
set -u
logs=${1:-gpu_logs}
shift $(( $# > 0 ? 1 : 0 ))
steps=${*:-dsa1 dm1 dm10 dsa10}
mkdir -p "$logs"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
py=${PYTHON:-python3}
cli="$py -m condense --dataset MNIST --model ConvNet --eval_mode S --num_exp 1 --dsa_strategy auto
     --device ${DEVICE:-cuda} --save_path $logs/sets"
step() {  # step NAME SECONDS FLAGS...: run the seed CLI with a limit, log to LOG_DIR/NAME.log
    local name=$1 limit=$2; shift 2
    case " $steps " in *" $name "*) ;; *) return ;; esac
    echo "== $name (limit ${limit}s): $*"
    local t0=$SECONDS
    # shellcheck disable=SC2086  # $cli is a command line on purpose
    timeout "$limit" $cli "$@" ${EXTRA:-} 2>&1 | tee "$logs/$name.log"
    echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - t0)) s"
}
for s in $steps; do
  case $s in dsa1|dm1|dm10|dsa10) ;; *) echo "gpu_methods: unknown step $s (allowed: dsa1 dm1 dm10 dsa10)" >&2; exit 2 ;; esac
done
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
step dsa1 240 --method DSA --ipc 1
step dm1 300 --method DM --ipc 1
step dm10 420 --method DM --ipc 10
step dsa10 420 --method DSA --ipc 10 --Iteration 200
