# One-command entry points. Each creates its own virtualenv, so they work on a fresh machine.
#   make test   - the whole test suite on CPU (what CI runs): main suite + the MediaPipe backend tests
#   make demo   - headless end-to-end demo (see README)
#   make test-host - the real-ComfyUI tests (needs COMFYUI_PATH; see docs/nodes.md, "Tests")
#   make test-variants - the main suite under other CPU kernels and thread counts (not part of CI;
#                 about four times the main suite's time; docs/testing.md)
#   make observatory - train the observatory model on the synthetic world (cached; ~45 min on two CPU cores)
#   make eval    - the observatory model's evaluation table: trained vs untrained vs baselines (docs/evaluation.md)
#   make observatory-stage2 / eval-stage2 - its second training stage (4,500 more steps, ~90 min) and that table
#   make observatory-stage3 / eval-stage3 - a third stage on a 4x larger training world (4,500 more steps, ~90 min)
#   make observatory-stage4 / eval-stage4 - a fourth stage on that world (5,000 more steps, ~100 min): the model
#                 whose table docs/evaluation.md and the closing numbers quote
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.deps-stamp
# MediaPipe 0.10.21 (the last release that ships its models) pins numpy<2, so it gets its own venv.
MP_VENV  ?= .venv-mediapipe
MP_PY    := $(MP_VENV)/bin/python
MP_STAMP := $(MP_VENV)/.deps-stamp

.PHONY: test test-main test-mediapipe test-fast test-host test-variants venv demo clean-venv observatory eval \
	observatory-stage2 eval-stage2 observatory-stage3 eval-stage3 observatory-stage4 eval-stage4

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

# The observatory (docs/evaluation.md): the synthetic world exported as lossless frame folders, a small
# UniAnimate trained on it by the project's trainer (recipe + seed: benchmarks/observatory/observatory.json),
# then its evaluation table. Everything is cached under OBS_DIR; delete it to regenerate.
OBS_DIR    ?= .cache/observatory
OBS_CONFIG := benchmarks/observatory/observatory.json
OBS_WORLD  := $(OBS_DIR)/world/.complete
OBS_MODEL  := $(OBS_DIR)/run/model.safetensors
OBS_CLIPS  ?= 16
OBS_EVAL_ARGS ?=
# e.g. OBS_TRAIN_ARGS="--set train.steps=20000 --set train.batch_size=8" for a longer run (a GPU is used when present)
OBS_TRAIN_ARGS ?=

$(OBS_WORLD): | $(STAMP)
	$(PY) -m unianimate_core.toyworld export --out $(OBS_DIR)/world/train --split train --clips 600 \
		--width 64 --height 128 --frames 16 --format png
	$(PY) -m unianimate_core.toyworld export --out $(OBS_DIR)/world/val --split val --clips 8 \
		--width 64 --height 128 --frames 16 --format png
	touch $@

$(OBS_MODEL): $(OBS_WORLD) $(OBS_CONFIG)
	$(PY) -m unianimate_core train $(OBS_CONFIG) --set output_dir=$(abspath $(OBS_DIR))/run \
		--set data.videos=$(abspath $(OBS_DIR))/world/train --set data.validation_dir=$(abspath $(OBS_DIR))/world/val \
		--set data.cache_dir=$(abspath $(OBS_DIR))/cache $(OBS_TRAIN_ARGS)

observatory: $(OBS_MODEL)

# Later stages (benchmarks/observatory/observatory_stageN.json) each continue the stage before. The third
# and fourth train on a four times larger world (clips 0-2399 of the train split; the first 600 are the
# clips of world/train, so their cached latents are reused).
OBS_WORLD_LARGE := $(OBS_DIR)/world/train_2400/.complete

$(OBS_WORLD_LARGE): | $(STAMP)
	$(PY) -m unianimate_core.toyworld export --out $(OBS_DIR)/world/train_2400 --split train --clips 2400 \
		--width 64 --height 128 --frames 16 --format png
	touch $@

# $(call OBS_STAGE,N,previous model,training videos folder under world/,its .complete stamp):
# the targets observatory-stageN (train) and eval-stageN (train if needed, then print the table).
define OBS_STAGE
OBS_STAGE$(1)_MODEL := $(OBS_DIR)/run_stage$(1)/model.safetensors

$$(OBS_STAGE$(1)_MODEL): $(2) $(4) benchmarks/observatory/observatory_stage$(1).json
	$$(PY) -m unianimate_core train benchmarks/observatory/observatory_stage$(1).json \
		--set output_dir=$$(abspath $$(OBS_DIR))/run_stage$(1) --set model.init=$$(abspath $(2)) \
		--set data.videos=$$(abspath $$(OBS_DIR))/world/$(3) --set data.validation_dir=$$(abspath $$(OBS_DIR))/world/val \
		--set data.cache_dir=$$(abspath $$(OBS_DIR))/cache $$(OBS_TRAIN_ARGS)

observatory-stage$(1): $$(OBS_STAGE$(1)_MODEL)

eval-stage$(1): $$(OBS_STAGE$(1)_MODEL)
	$$(PY) -m unianimate_core eval --toy --model $$< --untrained --split test --clips $$(OBS_CLIPS) \
		--width 64 --height 128 --frames 8 --out $$(OBS_DIR)/eval_stage$(1) $$(OBS_EVAL_ARGS)
endef

$(eval $(call OBS_STAGE,2,$(OBS_MODEL),train,$(OBS_WORLD)))
$(eval $(call OBS_STAGE,3,$(OBS_STAGE2_MODEL),train_2400,$(OBS_WORLD_LARGE)))
$(eval $(call OBS_STAGE,4,$(OBS_STAGE3_MODEL),train_2400,$(OBS_WORLD_LARGE)))

eval: $(OBS_MODEL)
	$(PY) -m unianimate_core eval --toy --model $(OBS_MODEL) --untrained --split test --clips $(OBS_CLIPS) \
		--width 64 --height 128 --frames 8 --out $(OBS_DIR)/eval $(OBS_EVAL_ARGS)
