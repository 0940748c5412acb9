# The two commands of the README work on a fresh machine: each makes .venv if it is missing
# and installs the package at the versions tested (constraints.txt), again whenever
# pyproject.toml or constraints.txt changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev

.PHONY: test demo bench samples lint gate-model

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# The report's browser test needs Chromium: installed here when it is missing and apt can
# (root, Debian); otherwise that test skips and says why.
test: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || \
	  (apt-get install -y -qq chromium >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1)) || \
	  echo "make test: chromium is missing and could not be installed; the browser test will skip"
	$(PY) -m pytest -q -n auto --dist loadfile

demo: $(STAMP)
	$(VENV)/bin/backpop demo

# Each script prints its tables and rewrites its own section of benchmarks/README.md
# (benchmarks/publish.py). batch.py is run on its own: about 4 minutes (plus 4 to simulate its
# cohort the first time), on cores that nothing else should be using.
bench: $(STAMP)
	$(PY) benchmarks/replay.py
	$(PY) benchmarks/detection.py
	$(PY) benchmarks/motion.py
	$(PY) benchmarks/pipeline.py
	$(PY) benchmarks/ble.py
	$(PY) benchmarks/lsl.py
	$(PY) benchmarks/report.py

samples: $(STAMP)
	rm -rf data/samples && $(PY) -m backpop_sense.samples data/samples

# The gate's learned judges (backpop_sense/pops/gate_model.npz for several mics and
# gate_model-one-mic.npz): rebuilt from the dev family's sessions (made on first use under
# bench-out/family); prints its figures at GateConfig.min_score and the best threshold on
# dev beside them. The band features are blanked: without them the judge carries over better
# between the two dev sound models (benchmarks/detection.md).
gate-model: $(STAMP)
	$(PY) benchmarks/train_gate.py --drop shape_ log2_band --save-oof bench-out/gate-oof.npz

lint: $(STAMP)
	$(VENV)/bin/ruff check backpop_sense tests benchmarks .ci
