# Every target uses the project venv; `make install` creates it (apt packages included).
VENV ?= .venv
PY := $(VENV)/bin/python
MC := $(VENV)/bin/matteconv
OUT ?= build
export GLOG_minloglevel ?= 2

.PHONY: install test verify demo bench clean

$(VENV)/.installed: pyproject.toml scripts/install.sh scripts/install-caffe.sh
	bash scripts/install.sh
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest -q

verify: install
	bash scripts/verify.sh $(OUT)

demo: install
	bash scripts/demo.sh $(OUT)/demo

bench: install
	$(PY) scripts/bench.py

clean:
	rm -rf $(OUT) .pytest_cache
