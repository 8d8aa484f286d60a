# Two entry points, each doing all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
REPORT_DIR := audit-report
# torch/torchvision are pinned to the builds this project's machines carry on disk.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: venv demo test clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Audits the built-in biased phantom model (it is meant to fail) and writes the HTML report.
demo: $(STAMP)
	@mkdir -p $(REPORT_DIR)
	@$(BIN)/pytest audits/demo.synthcxr.toml --synthcxr-cache-dir=.synthcxr-cache \
		--synthcxr-report=$(REPORT_DIR)/report.html --synthcxr-json=$(REPORT_DIR)/report.json \
		--synthcxr-csv=$(REPORT_DIR)/samples.csv; status=$$?; \
	echo "HTML audit report: $(abspath $(REPORT_DIR))/report.html"; exit $$status

# one torch thread per xdist worker: two workers on two cores, not four threads fighting for them
test: $(STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/pytest -n 2 -p no:randomly

clean:
	rm -rf $(VENV) $(REPORT_DIR)
