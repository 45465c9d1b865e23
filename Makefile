# Two commands do all set-up: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
LFW    ?= ../shared/data/lfw/lfw-deepfunneled
QUERY  ?= $(LFW)/George_W_Bush/George_W_Bush_0001.jpg

.PHONY: venv browser demo test test-fast bench bench-scale bench-video bench-api bench-watch notebook clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[baseline,distributed,eval,serve,test]'
	touch $@

demo: venv
	@test -d "$(LFW)" || { echo "LFW not found at $(LFW); run: make demo LFW=/path/to/lfw-deepfunneled"; exit 2; }
	$(BIN)/revsearch index "$(LFW)" --labels auto
	$(BIN)/revsearch search "$(QUERY)" -k 10

test: venv browser
	$(BIN)/ruff check src tests bench notebooks
	$(BIN)/python -m pytest

# The tests not marked slow: a quick check while editing (`make test` runs them all).
test-fast: venv
	$(BIN)/ruff check src tests bench notebooks
	$(BIN)/python -m pytest -m "not slow"

# The web page's end-to-end test drives Debian's Chromium; install it when we can.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "no chromium: install it (apt-get install chromium) or the browser test is skipped"; \
	  fi; }

bench: venv
	$(BIN)/python bench/bench_lfw.py

bench-scale: venv
	$(BIN)/python bench/bench_scale.py

bench-video: venv
	$(BIN)/python bench/bench_video.py

bench-api: venv
	$(BIN)/python bench/bench_api.py

bench-watch: venv
	$(BIN)/python bench/bench_watch.py

# Re-run the walkthrough and keep its outputs in the file (the tests run it too).
notebook: venv
	cd notebooks && ../$(BIN)/python -c "import nbformat, nbclient; \
	nb = nbformat.read('walkthrough.ipynb', 4); \
	nbclient.NotebookClient(nb, timeout=600, kernel_name='python3').execute(); \
	nbformat.write(nb, 'walkthrough.ipynb')"

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
