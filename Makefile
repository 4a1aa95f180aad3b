# BILBO — two commands on a fresh machine:
#   make demo   venv with the runtime only (no torch), a simulated night on the sample camera, dashboard on :5555
#   make test   venv with runtime + training + dev tools, Debian test deps, ruff, the whole test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed
DEMO_DATA := data/demo

.PHONY: venv venv-dev demo dashboard test lint system-deps weights cry-weights retrain backtest install-schedule bench clean-demo

$(RUNTIME): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(DEV): $(RUNTIME) requirements-train.txt requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(RUNTIME)
venv-dev: $(DEV)

demo: $(RUNTIME)
	rm -rf $(DEMO_DATA)
	BILBO_DATA_DIR=$(DEMO_DATA) $(PY) monitor.py --night last
	@echo
	@echo "  Dashboard: http://127.0.0.1:5555/   (Ctrl-C to stop)"
	@echo
	BILBO_DATA_DIR=$(DEMO_DATA) $(PY) -m dashboard

dashboard: $(RUNTIME)
	$(PY) -m dashboard

system-deps:
	bash .ci/system-deps.sh

lint: $(DEV)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: $(DEV) system-deps
	$(PY) -m ruff check .
	$(PY) -m pytest

weights: $(DEV)
	$(PY) -m train.vision --data ../shared/data --out models/weights
	$(PY) -m train.eye_points --data ../shared/data --out models/weights

cry-weights: $(DEV)
	$(PY) -m train.cry --out models/weights
	$(PY) -m train.cry_listen --write
	$(PY) -m train.evaluate_cry

retrain: $(DEV)
	$(PY) -m train.retrain

backtest: $(RUNTIME)
	$(PY) -m train.backtest

# A second camera (twins): make install-schedule CAMERA=ada [CONFIG=.env.ada]
# The cry listener is installed beside the timer when LISTEN is on (.env) and the camera carries audio;
# make install-schedule LISTEN=0 leaves it out (and removes an installed one), LISTEN=1 installs it without asking.
CAMERA_ARGS = $(if $(CAMERA),--camera $(CAMERA)) $(if $(CONFIG),--config $(CONFIG))
LISTEN_ARGS = $(if $(filter 0 no off false,$(LISTEN)),--listen no,$(if $(filter 1 yes on true,$(LISTEN)),--listen yes))
install-schedule: $(RUNTIME)
	@if [ "$$(uname)" = Darwin ]; then bash launchd/install.sh $(CAMERA_ARGS) $(LISTEN_ARGS); \
	else bash systemd/install.sh $(CAMERA_ARGS) $(LISTEN_ARGS); fi

bench: $(DEV)
	$(PY) bench/tick.py
