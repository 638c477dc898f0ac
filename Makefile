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

demo: build
	./$(BUILD)/kiln inspect tests/data/bert-tiny/model.onnx
	./$(BUILD)/kiln run tests/data/bert-tiny/model.onnx \
	  --input input_ids=tests/data/bert-tiny/inputs/input_ids.npy \
	  --input attention_mask=tests/data/bert-tiny/inputs/attention_mask.npy \
	  --input token_type_ids=tests/data/bert-tiny/inputs/token_type_ids.npy \
	  --output-dir $(BUILD)/demo-outputs

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# ONNX's backend suite (Debian's libonnx-testdata), then kiln's own cases for ops and opsets it lacks.
conformance: build
	./$(BUILD)/kiln conformance --expected tests/conformance/expected_pass.txt
	./$(BUILD)/kiln conformance tests/conformance/extra --expected tests/conformance/extra_expected_pass.txt

# Unit tests again under AddressSanitizer and UndefinedBehaviorSanitizer.
test-sanitize: deps
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_SANITIZE=ON $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 KILN_SANITIZED=1 ctest --output-on-failure -j $(JOBS)

test: test-unit conformance test-sanitize

format:
	clang-format -i $$(git ls-files 'src/*.cc' 'src/*.h' 'tests/*.cc' 'tests/*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
