# `make demo` and `make test` work on a fresh machine with only Python: they build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# DeepSpeed JIT-compiles its C++ ops once; keep them inside the venv so tests never pay for the build.
export TORCH_EXTENSIONS_DIR := $(abspath $(VENV))/torch_extensions
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
# The versions the suite passed with. `make clean test CONSTRAINTS=` tries the newest versions setup.cfg allows.
CONSTRAINTS ?= constraints.txt
export JUDGE_SFT_CONSTRAINTS := $(CONSTRAINTS)

.PHONY: setup test lint format demo demo-judge constraints clean gpu-wheels gpu-box-check

setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU torch wheel when no CUDA GPU is present; on a GPU box pip keeps (or fetches) CUDA torch, so its pin is dropped.
	if ! command -v nvidia-smi >/dev/null 2>&1 && ! $(BIN)/python -c "import torch" 2>/dev/null; then \
		$(BIN)/pip install -q torch==2.13.0; fi
	if command -v nvidia-smi >/dev/null 2>&1; then grep -v '^torch==' $(or $(CONSTRAINTS),/dev/null) > $(VENV)/constraints.txt; \
		else cat $(or $(CONSTRAINTS),/dev/null) > $(VENV)/constraints.txt; fi
	$(BIN)/pip install -q -c $(VENV)/constraints.txt -e ".[test]"
	# DeepSpeed's CPU ops the tests load (communication; Adam for cpu_offload), 35-80 s each to compile, built once
	# here rather than in the first test that needs them, with the venv's ninja as run.py builds them.
	if ! command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/python -c "from judge_sft.train.launch import \
		put_this_venv_first_on_path; put_this_venv_first_on_path(); from deepspeed.accelerator import get_accelerator; \
		[get_accelerator().create_op_builder(op).load() for op in ('ShareMemCommBuilder', 'CPUAdamBuilder')]"; fi
	touch $@

# Each test file on one of 2 workers (its module fixtures run once); PYTEST_ARGS="-n 0" runs in one process.
# --durations=15: the 15 slowest tests at the end of every run, so a slow-down shows in the CI log.
PYTEST_ARGS ?= -n 2 --dist loadfile
test: setup
	$(BIN)/python -m pytest -q --durations=15 $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Offline, CPU, a few minutes: prepare the bundled sample, build a tiny Qwen3, train it with 2 processes under ZeRO-3.
demo: setup
	$(BIN)/judge-sft prepare-data --input judge_sft/data/helpsteer2_sample.jsonl --output-dir demo_output/data --overwrite
	$(BIN)/judge-sft validate-data demo_output/data/train.parquet demo_output/data/val.parquet
	$(BIN)/judge-sft tiny-model demo_output/tiny-qwen3
	rm -rf demo_output/model
	$(BIN)/judge-sft train recipes/tiny_cpu.yaml --accelerate-config cpu_zero3_2proc
	$(BIN)/judge-sft plot demo_output/model
	@echo
	@echo "Prepared data:      demo_output/data/{train,val}.parquet, stats.json"
	@echo "Trained judge:      demo_output/model (model.safetensors, tokenizer, chat_template.jinja, README.md)"
	@echo "Checkpoints:        demo_output/model/checkpoint-*"
	@echo "Loss curve:         demo_output/model/loss_curve.png"
	@echo "TensorBoard logs:   demo_output/model/runs"

# A pairwise judge (docs/judges.md) end to end: the bundled preference sample, both orders, the tiny model, offline.
demo-judge: setup
	$(BIN)/judge-sft prepare-data --task pairwise --input judge_sft/data/helpsteer2_preference_sample.jsonl \
		--output-dir demo_output/judge_data --overwrite
	$(BIN)/judge-sft validate-data demo_output/judge_data/train.parquet demo_output/judge_data/val.parquet
	$(BIN)/judge-sft tiny-model demo_output/tiny-qwen3
	$(BIN)/judge-sft inspect-data demo_output/judge_data/train.parquet --tokenizer demo_output/tiny-qwen3 --limit 1 \
		--color never
	rm -rf demo_output/judge_model
	$(BIN)/judge-sft train recipes/tiny_cpu.yaml --accelerate-config cpu_zero3_2proc \
		--train_file demo_output/judge_data/train.parquet --val_file demo_output/judge_data/val.parquet \
		--output_dir demo_output/judge_model --max_steps 8 --eval_samples 2
	$(BIN)/judge-sft samples demo_output/judge_model
	@echo
	@echo "Judge data:         demo_output/judge_data/{train,val}.parquet, stats.json (labels, A/B balance, strengths)"
	@echo "Trained judge:      demo_output/judge_model (the tiny model: its verdicts are noise; the path is the point)"

# After a green `make clean test CONSTRAINTS=`: pin what just passed.
constraints: setup
	{ sed -n '1,2p' constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -v '^judge-sft=='; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) demo_output

# For a bare GPU box without internet (benchmarks/gpu_check.sh; docs/gpu.md#a-bare-gpu-box-without-internet, which
# lists the box's packages): the wheels the run needs beyond them (benchmarks/gpu_box.py wheels, at the versions of
# constraints.txt) into .whl/ (git-ignored), for the box's Python. DeepSpeed has only its source on PyPI: built here
# into a pure-Python wheel (its ops compile at run time, if at all). At most 60 MiB: the checkout travels with them.
GPU_WHEELS_PYTHON ?= 3.12
GPU_WHEELS_DIR ?= .whl
GPU_WHEELS_MAX_MIB := 60

gpu-wheels: setup
	rm -rf $(GPU_WHEELS_DIR) && mkdir -p $(GPU_WHEELS_DIR)
	$(BIN)/python benchmarks/gpu_box.py wheels > $(GPU_WHEELS_DIR)/needed.txt
	grep -v '^deepspeed==' $(GPU_WHEELS_DIR)/needed.txt > $(GPU_WHEELS_DIR)/download.txt
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version $(GPU_WHEELS_PYTHON) \
		--implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 -d $(GPU_WHEELS_DIR) -r $(GPU_WHEELS_DIR)/download.txt
	$(BIN)/python -m pip wheel -q --no-deps $$(grep '^deepspeed==' $(GPU_WHEELS_DIR)/needed.txt) -w $(GPU_WHEELS_DIR)
	rm $(GPU_WHEELS_DIR)/download.txt
	@ls -s --block-size=K $(GPU_WHEELS_DIR)
	@size=$$(du -sm $(GPU_WHEELS_DIR) | cut -f1); echo "$(GPU_WHEELS_DIR): $$size MiB"; \
		test $$size -le $(GPU_WHEELS_MAX_MIB) || { echo "over $(GPU_WHEELS_MAX_MIB) MiB"; exit 1; }

# The bare box emulated here: a venv holding only the box's list (docs/gpu.md; constraints.txt's CPU torch 2.13 and
# numpy and this machine's Python stand in for the box's CUDA torch 2.11, numpy 2.5.2 and Python 3.12, which the index
# here does not offer), the packages known not to be there removed, plus `make gpu-wheels`' output for this Python; then `benchmarks/gpu_check.sh --tiny` in it.
# A wheel missing from gpu-wheels fails here, not on the GPU. The GPU's 8-minute budget is too short for 2 CPU cores.
GPU_BOX_VENV := .gpu-box-venv
GPU_BOX_STAND_INS := torch numpy

gpu-box-check: setup
	rm -rf $(GPU_BOX_VENV) && $(PYTHON) -m venv $(GPU_BOX_VENV)
	$(BIN)/python benchmarks/gpu_box.py box --stand-in $(GPU_BOX_STAND_INS) > $(GPU_BOX_VENV)/box.txt
	$(GPU_BOX_VENV)/bin/pip install -q -r $(GPU_BOX_VENV)/box.txt
	$(GPU_BOX_VENV)/bin/pip uninstall -q -y $$($(BIN)/python benchmarks/gpu_box.py absent)
	$(MAKE) -o $(VENV)/.installed gpu-wheels GPU_WHEELS_DIR=$(GPU_BOX_VENV)/whl \
		GPU_WHEELS_PYTHON=$$($(GPU_BOX_VENV)/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
	PYTHON=$(abspath $(GPU_BOX_VENV))/bin/python GPU_WHEELS_DIR=$(GPU_BOX_VENV)/whl GPU_CHECK_SECONDS=1200 \
		benchmarks/gpu_check.sh --tiny
