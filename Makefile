# One-command entry points. Each creates its own virtualenv, so they work on a fresh machine.
#   make test   - the whole test suite on CPU (what CI runs): main suite + the MediaPipe backend tests
#   make demo   - headless end-to-end demo (see README)
#   make test-host - the real-ComfyUI tests (needs COMFYUI_PATH; see docs/nodes.md, "Tests")
#   make test-variants - the main suite under other CPU kernels and thread counts (not part of CI;
#                 about four times the main suite's time; docs/testing.md)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.deps-stamp
# MediaPipe 0.10.21 (the last release that ships its models) pins numpy<2, so it gets its own venv.
MP_VENV  ?= .venv-mediapipe
MP_PY    := $(MP_VENV)/bin/python
MP_STAMP := $(MP_VENV)/.deps-stamp

.PHONY: test test-main test-mediapipe test-fast test-host test-variants venv demo clean-venv

$(STAMP): requirements.txt requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -r requirements.txt -r requirements-test.txt
	touch $(STAMP)

$(MP_STAMP): requirements.txt requirements-test.txt
	$(PYTHON) -m venv $(MP_VENV)
	$(MP_PY) -m pip install --upgrade pip
	$(MP_PY) -m pip install torch==2.13.0
	$(MP_PY) -m pip install "mediapipe==0.10.21" "numpy<2" -r requirements.txt \
		pytest pytest-timeout hypothesis "opencv-python-headless>=4.10,<5.2" onnxruntime
	touch $(MP_STAMP)

venv: $(STAMP)

test: test-main test-mediapipe

test-main: $(STAMP)
	$(PY) -m pytest

test-mediapipe: $(MP_STAMP)
	$(MP_PY) -m pytest tests/pose -m mediapipe

# make demo [MODELS=/path/to/models] [DEMO_ARGS="--steps 30"]: real video when the weights are found,
# otherwise a clearly labelled random-weight run that proves the installation.
demo: $(STAMP)
	$(PY) -m unianimate_core demo $(if $(MODELS),--models $(MODELS)) $(DEMO_ARGS)

# make test-host COMFYUI_PATH=/path/to/ComfyUI [COMFYUI_PYTHON=...] UNIANIMATE_COMFY_TOOLS=...:
# the pack inside a real ComfyUI, plus the real-frontend check (Debian's chromium: apt-get install chromium).
test-host: $(STAMP)
	$(PY) -m pip install -r requirements-host-test.txt
	$(PY) -m pytest tests/host

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

# Generic (no AVX2) and AVX2 kernels of PyTorch's CPU backend, then 1 and 2 torch threads (OpenMP threads
# sleep instead of spinning while waiting, so two threads stay fast on a busy 2-core machine; the
# arithmetic is unchanged). Every variant runs; the target fails if any failed.
TEST_VARIANTS := "ATEN_CPU_CAPABILITY=default" "ATEN_CPU_CAPABILITY=avx2" \
	"UNIANIMATE_TEST_THREADS=1" "UNIANIMATE_TEST_THREADS=2 OMP_WAIT_POLICY=PASSIVE"

test-variants: $(STAMP)
	@status=0; for variant in $(TEST_VARIANTS); do \
		echo "== $$variant"; env $$variant $(PY) -m pytest -q -p no:cacheprovider || status=1; \
	done; exit $$status

clean-venv:
	rm -rf $(VENV) $(MP_VENV)
