#!/usr/bin/env bash
# Runs the tests (pytest arguments as given) as a CPU with fewer vector instructions would compute:
# a quick way to see, on one machine, which test compares bit for bit what another CPU computes
# differently.  Each library that picks its kernels by CPU at run time is held to SSE4:
#
#   torch's own vector kernels      ATEN_CPU_CAPABILITY=default (none)
#   oneDNN convolutions             ONEDNN_MAX_CPU_ISA=SSE41
#   MKL matrix products             MKL_ENABLE_INSTRUCTIONS=SSE4_2
#   numpy's dispatched loops        NPY_DISABLE_CPU_FEATURES: x86-64-v3 and v4 (AVX, AVX2, FMA3, AVX-512)
#   OpenCV's dispatched kernels     OPENCV_CPU_DISABLE: AVX-512, AVX2, FMA3, AVX, FP16
#
# Not covered: dlib-bin and onnxruntime (one prebuilt binary, or dispatch with no switch) and OpenBLAS
# (OPENBLAS_CORETYPE is left as the machine sets it).  scripts/setup.sh must have run first.
#
#   bash scripts/test-as-another-cpu.sh                      # the whole suite
#   bash scripts/test-as-another-cpu.sh -m reference         # what .ci/run runs: the reference comparisons
set -euo pipefail
cd "$(dirname "$0")/.."
export ATEN_CPU_CAPABILITY=default
export ONEDNN_MAX_CPU_ISA=SSE41
export MKL_ENABLE_INSTRUCTIONS=SSE4_2
export NPY_DISABLE_CPU_FEATURES="X86_V3 X86_V4 AVX512_ICL AVX512_SPR"
export OPENCV_CPU_DISABLE="AVX512F,AVX2,FMA3,AVX,FP16"
exec .venv/bin/python -m pytest "$@"
