# Quick start: `make demo` runs the main job on the built-in model; `make test` runs every test.
# Both install missing Debian packages first (scripts/install-deps.sh).

BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
ifeq ($(CI),true)
  CMAKE_FLAGS += -DKILN_WERROR=ON
endif

.PHONY: all deps build demo test test-unit test-sanitize conformance format clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

# Until the optimizer and the fast kernels land, the main job is: inspect the bundled torch-exported
# BERT, run it on its bundled inputs, and check the outputs against PyTorch's.
demo: build
	./$(BUILD)/kiln inspect tests/data/bert-tiny/model.onnx --dim sequence=8
	./$(BUILD)/kiln run tests/data/bert-tiny/model.onnx \
	  --input-dir tests/data/bert-tiny/inputs \
	  --output-dir $(BUILD)/demo-outputs \
	  --compare tests/data/bert-tiny/outputs

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# ONNX's backend suite (Debian's libonnx-testdata), then kiln's own cases for ops and opsets it lacks.
conformance: build
	./$(BUILD)/kiln conformance --expected tests/conformance/expected_pass.txt
	./$(BUILD)/kiln conformance tests/conformance/extra --expected tests/conformance/extra_expected_pass.txt

# Unit tests and both conformance suites again under AddressSanitizer and UndefinedBehaviorSanitizer.
test-sanitize: deps
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS='-O1 -g1' -DKILN_SANITIZE=ON $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1 ./$(ASAN_BUILD)/kiln conformance --expected tests/conformance/expected_pass.txt
	ASAN_OPTIONS=detect_leaks=1 ./$(ASAN_BUILD)/kiln conformance tests/conformance/extra \
	  --expected tests/conformance/extra_expected_pass.txt
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS)

# Conformance first, so that each stage ends with ctest's summary.
test: conformance test-unit test-sanitize

format:
	clang-format -i $$(git ls-files 'src/*.cc' 'src/*.h' 'tests/*.cc' 'tests/*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
