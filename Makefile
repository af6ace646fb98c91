# Every target uses the project venv; `make install` creates it (apt packages included).
VENV ?= .venv
PY := $(VENV)/bin/python
MC := $(VENV)/bin/matteconv
OUT ?= build
export GLOG_minloglevel ?= 2

.PHONY: install test test-slow test-portable verify demo bench bench-avx2 clean

$(VENV)/.installed: pyproject.toml scripts/install.sh scripts/install-caffe.sh
	bash scripts/install.sh
	touch $@

# The official model lives in the user cache, not the venv: checked (and fetched if missing) on every install,
# and the temporal model rebuilt beside it from the committed delta (docs/temporal.md).
install: $(VENV)/.installed
	$(PY) scripts/fetch-official.py
	$(PY) scripts/temporal-delta.py rebuild

# Tier 1 (`make test`): under 5 minutes on a 2-core AMD EPYC; prints its wall time and the ten slowest tests.
# Tier 2 (`make test-slow`): full-size end-to-end checks (Caffe parity at 512, the bad-input battery, gloo ...).
# `make test-portable`: tier 1 again on other kernels (no AVX2/FMA/AVX-512 in torch, oneDNN, OpenBLAS, numpy,
# OpenCV), so an exact-equality assumption that holds on one CPU kind only fails here, not on CI's next machine.
# oneDNN is capped at AVX, not SSE4.1: OpenVINO's CPU plugin (test_interop) refuses SSE41 ("bad combination").
# OpenCV is told only features it knows on every build: an unknown name (AVX512_SKX) prints a warning on stderr.
# onnxruntime's MLAS has no such switch: scripts/cpuid_mask.py hides AVX2/FMA/AVX-512 from CPUID (where the CPU
# offers CPUID faulting; elsewhere it says "cpuid-mask skipped: why" and runs unmasked), so MLAS runs its AVX kernels.
PYTEST := $(PY) scripts/timed-pytest.py
# Tier 1 runs one xdist worker per core (a test file stays on one worker, so module fixtures are built once);
# tier 2 runs serially: its full-size exports peak at up to 15 GB each.
XDIST := -n auto --dist loadfile
test: install
	$(PYTEST) -m "not slow" $(XDIST) $(ARGS)

test-slow: install
	$(PYTEST) -m slow $(ARGS)

test-portable: install
	ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=AVX OPENBLAS_CORETYPE=Nehalem \
	NPY_DISABLE_CPU_FEATURES="X86_V3 X86_V4 AVX512_ICL AVX512_SPR" OPENCV_CPU_DISABLE=AVX2,FMA3,AVX,FP16 \
	$(PY) scripts/cpuid_mask.py --keep avx -- $(PYTEST) -m "not slow" $(XDIST) $(ARGS)

verify: install
	bash scripts/verify.sh $(OUT)

demo: install
	bash scripts/demo.sh $(OUT)/demo

bench: install
	$(PY) scripts/bench.py

# The same run with every library's AVX2 kernels on an AVX-512 CPU (scripts/cpuid_mask.py: CPUID masked):
# an indication for the AMD EPYC kind, labelled as such beside every ratio, never a measurement of it.
bench-avx2: install
	$(PY) scripts/bench.py --kernels avx2

clean:
	rm -rf $(OUT) .pytest_cache
