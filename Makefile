# Two commands do all set-up: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
LFW    ?= ../shared/data/lfw/lfw-deepfunneled
QUERY  ?= $(LFW)/George_W_Bush/George_W_Bush_0001.jpg

.PHONY: venv demo test bench bench-scale bench-video clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[baseline,eval,test]'
	touch $@

demo: venv
	@test -d "$(LFW)" || { echo "LFW not found at $(LFW); run: make demo LFW=/path/to/lfw-deepfunneled"; exit 2; }
	$(BIN)/revsearch index "$(LFW)" --labels auto
	$(BIN)/revsearch search "$(QUERY)" -k 10

test: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest

bench: venv
	$(BIN)/python bench/bench_lfw.py

bench-scale: venv
	$(BIN)/python bench/bench_scale.py

bench-video: venv
	$(BIN)/python bench/bench_video.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
