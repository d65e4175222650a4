# govex — the two commands a newcomer needs are `make run` and `make test`.
# Everything else (generate, lint, protoset, bench) is for developers and CI.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTO_FILES := $(shell find protos/govex -name '*.proto' | sort)
GOVEX_LISTEN ?= 127.0.0.1:50051
GOVEX_METRICS_LISTEN ?= 127.0.0.1:9464
GOVEX_CONSOLE_LISTEN ?= 127.0.0.1:8080

# Our sources compiled to bytecode, as pip does when it installs a wheel.
# Where PYTHONDONTWRITEBYTECODE is set (it is on these machines) an editable
# install would compile every govex module again at every start, some 0.4 s
# of a server's start-up. Only files changed since are compiled again; a
# stale .pyc is never used (Python checks the source's time and size).
BYTECODE = $(BIN)/python -m compileall -q -j 0 server/govex_server clients/govex clients/govex_client

.PHONY: run test lint generate protoset breaking bench fuzz system-deps venv clean format

# The contract as released (docs/contract.md): `make breaking` compares protos/
# with it. A commit id, because a fresh clone in CI may have no tags; move it
# forward only together with a CHANGELOG.md entry.
CONTRACT_RELEASE := d23995752cc363e15a10464c37b8f01dac12d27f

# The virtualenv is rebuilt whenever a pyproject.toml changes.
$(STAMP): pyproject.toml clients/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The client distribution first: the server's depends on it.
	$(BIN)/python -m pip install --quiet -e './clients[cli]'
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# PostgreSQL (integration tests), chromium (the console's browser tests) and
# h2load (benchmarks) come from Debian.
system-deps:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "installing postgresql (needed by the integration tests)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (needed by the console's browser tests)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

run: $(STAMP)
	@$(BYTECODE)
	$(BIN)/python -m govex_server.devrun --listen $(GOVEX_LISTEN) --metrics-listen '$(GOVEX_METRICS_LISTEN)' \
	  --console-listen '$(GOVEX_CONSOLE_LISTEN)'

test: $(STAMP) system-deps
	@$(BYTECODE)
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check server clients tests
	$(BIN)/ruff format --check server clients tests
	$(BIN)/mypy server clients tests
	$(BIN)/buf lint
	$(BIN)/buf format --diff --exit-code --path protos/govex

format: $(STAMP)
	$(BIN)/ruff format server clients tests
	$(BIN)/ruff check --fix server clients tests
	$(BIN)/buf format -w --path protos/govex

# Regenerates generated/ from protos/ (messages, grpc stubs, mypy stubs).
generate: $(STAMP)
	rm -rf generated/govex
	mkdir -p generated
	$(BIN)/python -m grpc_tools.protoc -Iprotos \
	  --plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy \
	  --plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc \
	  --python_out=generated --grpc_python_out=generated \
	  --mypy_out=generated --mypy_grpc_out=generated \
	  $(PROTO_FILES)
	# Regular packages with a PEP 561 marker: a consumer's mypy --strict reads
	# the generated stubs (and `from govex.x.v1 import y_pb2` type-checks).
	find generated/govex -type d -exec touch {}/__init__.py \;
	touch generated/govex/py.typed
	# The descriptor set with comments, served by reflection and printed by
	# `govex-server protoset`.
	$(BIN)/python -m grpc_tools.protoc -Iprotos --include_imports --include_source_info \
	  --descriptor_set_out=generated/govex/govex.protoset $(PROTO_FILES) \
	  protos/google/rpc/error_details.proto protos/google/rpc/status.proto

# The descriptor set with comments, for `grpcurl -protoset build/govex.protoset`
# (the server's reflection serves the same comments).
protoset: $(STAMP)
	mkdir -p build
	$(BIN)/govex-server protoset > build/govex.protoset
	@echo "wrote build/govex.protoset"

# buf breaking (FILE rules, buf.yaml) against the released contract, taken from git.
breaking: $(STAMP)
	rm -rf build/contract-release && mkdir -p build/contract-release
	git archive $(CONTRACT_RELEASE) buf.yaml protos | tar -x -C build/contract-release
	$(BIN)/buf breaking --against build/contract-release
	@echo "no breaking change against the contract released at $(CONTRACT_RELEASE)"

bench: $(STAMP)
	@command -v h2load >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client >/dev/null; }
	@$(BYTECODE)
	$(BIN)/python -m tests.bench.run_all

# 100,000 fuzzed calls over every RPC (not part of `make test`, which runs 2,000).
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz.run

clean:
	rm -rf $(VENV) build .mypy_cache .ruff_cache .pytest_cache
