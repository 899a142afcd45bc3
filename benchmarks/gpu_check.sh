#!/usr/bin/env bash
# GPU check, for a machine with an NVIDIA GPU (under 12 minutes):
#   bash benchmarks/gpu_check.sh
# Installs what it needs into .venv-gpu (TensorFlow with CUDA, Ray, runmanager from this
# checkout), shows the GPUs (nvidia-smi), then runs one small sweep on each executor with
# GPUs -- sequential, processes (two workers sharing GPU 0), ray with num_gpus=0.5 (two runs
# packed on one GPU) -- and the same sequential sweep with the GPU hidden. Each epoch row
# says where its run ran: the process, CUDA_VISIBLE_DEVICES, the logical GPUs TensorFlow sees
# (tf.config.list_logical_devices) and the device of the model's weights; the last table is
# the time per run against CPU. Then, in .venv-gpu-jax (JAX with CUDA), Keras on JAX: 16 runs
# on 1 worker against 4 workers sharing GPU 0, from a driver whose JAX holds the GPU, with the
# sweep's shared compilation cache (gpu_check.py --jax; targets: >= 2x, no out-of-memory line).
# Set PYTHON to use another interpreter, SKIP_INSTALL=1 to use the current environment for
# both, SKIP_TF=1 or SKIP_JAX=1 to leave a part out.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2 RAY_USAGE_STATS_ENABLED=0 KERAS_BACKEND=tensorflow

if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv
else
  echo "nvidia-smi not found: no NVIDIA GPU here; the sweeps below run on CPU only" >&2
fi

PY=${PYTHON:-python3}
PY_JAX=$PY
if [[ "${SKIP_INSTALL:-0}" != 1 ]]; then
  if [[ "${SKIP_TF:-0}" != 1 ]]; then
    "$PY" -m venv .venv-gpu
    .venv-gpu/bin/python -m pip install -q --upgrade pip
    if command -v nvidia-smi >/dev/null; then
      .venv-gpu/bin/python -m pip install -q "tensorflow[and-cuda]"
    else
      .venv-gpu/bin/python -m pip install -q tensorflow-cpu
    fi
    .venv-gpu/bin/python -m pip install -q -e ".[ray]"
  fi
  if [[ "${SKIP_JAX:-0}" != 1 ]]; then
    # A venv of its own: TensorFlow's and JAX's CUDA wheels need not agree.
    "$PY" -m venv .venv-gpu-jax
    .venv-gpu-jax/bin/python -m pip install -q --upgrade pip
    if command -v nvidia-smi >/dev/null; then
      .venv-gpu-jax/bin/python -m pip install -q "jax[cuda12]"
    else
      .venv-gpu-jax/bin/python -m pip install -q "jax[cpu]"
    fi
    .venv-gpu-jax/bin/python -m pip install -q -e .
  fi
  PY=$PWD/.venv-gpu/bin/python
  PY_JAX=$PWD/.venv-gpu-jax/bin/python
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cp benchmarks/gpu_check.py "$WORK/gpu_check.py"
cd "$WORK"
if [[ "${SKIP_TF:-0}" != 1 ]]; then
  timeout 270 "$PY" gpu_check.py
fi
if [[ "${SKIP_JAX:-0}" != 1 ]]; then
  timeout 420 "$PY_JAX" gpu_check.py --jax
fi
