# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
STAMP  := $(VENV)/.installed
# torch is pinned through constraints.txt (the CPU wheel on disk); an unpinned torch pulls a CUDA build.
INSTALL := $(PIP) install --disable-pip-version-check -q -c constraints.txt

.PHONY: demo test system-packages lint typecheck clean bench gate mutation mutation-quick

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(INSTALL) -e '.[all]'
	touch $(STAMP)

demo: $(STAMP)
	@rm -rf artifacts/demo
	$(BIN)/conv2d pack create --config examples/dogs.yaml --model examples/conv2d_fsq.pt --name dogs_v1 --output-dir artifacts/demo
	$(BIN)/conv2d pack list --output-dir artifacts/demo --verbose
	$(BIN)/conv2d pack verify "$$(ls artifacts/demo)" --output-dir artifacts/demo --target onnx

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The export-parity gate: build the example bundle and run its ONNX checks, as a merge gate would.
gate: $(STAMP)
	@rm -rf artifacts/gate && mkdir -p artifacts
	$(BIN)/conv2d pack create --config examples/dogs.yaml --model examples/conv2d_fsq.pt --name gate --output-dir artifacts/gate --json > artifacts/gate.json
	$(BIN)/python -m pytest checks --artifacts artifacts/gate --bundle "$$($(BIN)/python -c 'import json;print(json.load(open("artifacts/gate.json"))["exp_hash"])')" --target onnx -q

# The Debian/Ubuntu packages tests/oci and tests/remote run (docker-registry, openssh-server, openssh-client,
# rsync), installed where missing: as root, or through sudo without a password; otherwise it stops with the command
# to run, before the long test run.
system-packages:
	bash scripts/system-packages.sh

# --dist worksteal: the suite's tests range from milliseconds to ~25 s (a Core ML verify in a subprocess); a
# worker that runs out of tests takes some of the other's instead of idling through the slow tail
test: system-packages $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 2 --dist worksteal -q
	$(MAKE) --no-print-directory gate

# Polygraphy, the peer the parity check is measured against (row 2), comes with the dev extra.
bench: $(STAMP)
	$(BIN)/python -m bench --json bench/results.json

# Mutation testing (not part of `make test`; tests/README.md has the latest figures and every survivor): mutmut over
# the verdict-critical modules ([tool.mutmut] in pyproject.toml), each mutant judged by the fast in-process tests
# under tests/unit that reach it. The example bundle is built once beforehand ($$CONV2D_TEST_BUNDLE) for the
# thousands of short sessions that follow. MUTANTS='conv2d_bundle.verify.verdict*' runs only those mutants.
# MUTATION_BUDGET (seconds) bounds the run: when it runs out, the summary covers the mutants that ran and the
# target fails, saying so. `make mutation-quick`: the verdict's core only (verdict, check plan, parity figures,
# tolerance policy: ~1,500 mutants, ~15 min on the 2-core VM); `make mutation`: every module (~7,400, ~1 h).
MUTANTS ?=
MUTATION_BUDGET ?= 5400
QUICK_MUTANTS := conv2d_bundle.verify.verdict* conv2d_bundle.verify.plan* conv2d_bundle.parity.figures* \
	conv2d_bundle.parity.tolerance*
mutation: $(STAMP)
	$(INSTALL) 'mutmut==3.8.1'
	rm -rf mutants
	@work=$$(mktemp -d -t conv2d-mutation-XXXXXX); \
	$(BIN)/conv2d pack create --config examples/dogs.yaml --model examples/conv2d_fsq.pt --name dogs_v1 \
		--output-dir "$$work" --json > "$$work/create.json" && \
	CONV2D_TEST_BUNDLE=$$($(BIN)/python -c 'import json, sys; print(json.load(open(sys.argv[1]))["bundle_dir"])' \
		"$$work/create.json") CONV2D_SHARED=$(CURDIR)/../shared \
		timeout $(MUTATION_BUDGET) $(BIN)/mutmut run --max-children 2 $(MUTANTS); \
	status=$$?; rm -rf "$$work"; \
	if [ $$status -eq 124 ]; then echo "mutation: the $(MUTATION_BUDGET) s budget ran out; the summary covers the mutants that ran" >&2; fi; \
	if [ -d mutants ]; then $(BIN)/python mutation/summary.py | tee mutants/summary.txt; fi; \
	exit $$status

mutation-quick:
	@$(MAKE) --no-print-directory mutation MUTANTS='$(QUICK_MUTANTS)'

clean:
	rm -rf artifacts .hypothesis mutants
