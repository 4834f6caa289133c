# `make demo` and `make test` set themselves up on first use (virtualenv + editable install).
VENV ?= .venv
PY := $(VENV)/bin/python
# The data root: $DC_DATA if set, else ../shared/data beside this checkout when it exists, else ./data.
DC_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),$(abspath data))
export DC_DATA

.PHONY: demo cell test
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

demo: $(VENV)/.installed
	$(PY) -m orchestrator.run sweeps/smoke.yaml --download --output runs $(if $(wildcard runs/smoke/results.parquet),--resume)

cell: $(VENV)/.installed
	$(PY) -m condense --dataset MNIST --model ConvNet --ipc 1 --smoke --save_path runs/cell

test: $(VENV)/.installed
	$(PY) -m pytest -q

