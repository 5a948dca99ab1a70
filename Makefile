# make demo   — installs what is missing, builds in release, runs the demo
# make test   — installs what is missing, runs the whole test suite (release build)
# make bench  — side-by-side benchmarks against numpy / PyTorch / tiktoken / HF tokenizers
# make fixtures — regenerates the committed PyTorch reference fixtures

# Baseline x86-64 turns SIMD FMA into library calls: compile for this machine's CPU.
SWIFTFLAGS := -c release -Xswiftc -target-cpu -Xswiftc native
LLM := .build/release/llm

.PHONY: setup build demo test bench fixtures clean

setup:
	@bash scripts/setup.sh
	@bash scripts/fetch/gpt2-tiktoken.sh

build: setup
	swift build $(SWIFTFLAGS) --product llm

demo: build
	$(LLM) demo

test: setup
	swift test $(SWIFTFLAGS)

bench: build
	@bash scripts/setup-python.sh
	@bash scripts/fetch/corpus.sh
	python3 bench/run.py --llm $(LLM)

fixtures:
	@bash scripts/setup-python.sh
	python3 scripts/fixtures/make_tensor_fixtures.py
	python3 scripts/fixtures/make_tokenizer_fixtures.py

clean:
	rm -rf .build
