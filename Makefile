# make demo   — installs what is missing, builds in release, runs the demo
# make test   — installs what is missing, runs the whole test suite (release build)
# make bench  — side-by-side benchmarks against numpy / PyTorch / tiktoken / HF tokenizers / llama.cpp
# make fixtures — regenerates the committed PyTorch and llama.cpp reference fixtures
# make quality — what quantization costs: perplexity and KL divergence per type × method (README table)
# make fuzz   — every file reader under libFuzzer, FUZZ_RUNS executions (default 1,000,000) each

# Baseline x86-64 turns SIMD FMA into library calls: compile for this machine's CPU.
SWIFTFLAGS := -c release -Xswiftc -target-cpu -Xswiftc native
LLM := .build/release/llm

.PHONY: setup build demo test bench fixtures quality fuzz clean

setup:
	@bash scripts/setup.sh
	@bash scripts/fetch/gpt2-tiktoken.sh
	@bash scripts/fetch/smollm2.sh
	@bash scripts/fetch/gemma3.sh
	@bash scripts/fetch/sentencepiece-tests.sh

build: setup
	swift build $(SWIFTFLAGS) --product llm

# The demo: a small GPT (4 layers, 192 wide) learns from real text that Debian packages ship
# (fortunes + the Python docs), with a BPE tokenizer trained on that text first; then it writes.
DEMO_MINUTES ?= 3
DEMO_FINETUNE_EPOCHS ?= 3
DEMO_DPO_PAIRS ?= 40
demo: build
	@bash scripts/fetch/corpus.sh
	$(LLM) train --data .cache/corpus.txt --tokenizer train --vocab-size 4096 --config small \
		--context 128 --batch 16 --lr 3e-3 --min-lr 3e-4 --warmup 30 --minutes $(DEMO_MINUTES) \
		--eval-every 100 --sample-every 400 --out runs/demo
	$(LLM) generate --model runs/demo --prompt "The" --max-new-tokens 80 --temperature 0.8 --top-k 40 --seed 1
	$(LLM) generate --model runs/demo --prompt "Python" --max-new-tokens 80 --temperature 0.8 --top-k 40 --seed 2
	@echo "--- and a real pretrained model, SmolLM2-135M-Instruct (GGUF, Q4_1), answering in chat format:"
	$(LLM) generate --model .cache/SmolLM2-135M-Instruct.Q4_1.gguf --chat --system "You are a helpful assistant." \
		--prompt "Give me three tips for writing clear code." --max-new-tokens 120 --temperature 0
	@echo "--- a second model family: Gemma 3 270M (GGUF Q4_K_M: K-quant blocks, SentencePiece vocabulary, sliding-window layers) continues a sentence:"
	$(LLM) generate --model .cache/gemma-3-270m-q4_k_m.gguf --prompt "The three most useful habits for writing clear code are" --max-new-tokens 40 --temperature 0
	@echo "--- looking inside: llm explain writes one self-contained HTML page (attention maps, logit lens, norms, how surprising each token is) for SmolLM2 finishing a sentence; open runs/explain-smollm2.html in a browser"
	$(LLM) explain --model .cache/SmolLM2-135M-Instruct.Q4_1.gguf --prompt "The capital of Australia is" --continue 4 --output runs/explain-smollm2.html
	@echo "--- serving: llm serve puts SmolLM2 behind OpenAI's HTTP API (one batched forward pass per step for every request); two requests at once, then SIGTERM"
	python3 scripts/demo/serve.py --llm $(LLM) --model .cache/SmolLM2-135M-Instruct.Q4_1.gguf
	@echo "--- quantization: our GPT written as a GGUF file with Q8_0 weights (llama.cpp's gpt2 architecture, which llama.cpp runs too), then it writes again:"
	$(LLM) quantize --model runs/demo --type q8_0 --output runs/demo-q8_0.gguf | tail -1
	$(LLM) generate --model runs/demo-q8_0.gguf --prompt "The" --max-new-tokens 60 --temperature 0.8 --top-k 40 --seed 1
	@bash scripts/fetch/llamafactory-data.sh
	@echo "--- fine-tuning: LoRA adapters on SmolLM2's frozen Q4_1 weights (QLoRA) learn a new name from LLaMA-Factory's identity data"
	@rm -rf runs/demo-identity
	$(LLM) finetune --model .cache/SmolLM2-135M-Instruct.Q4_1.gguf --data .cache/llamafactory/identity.json --prompt-format chat \
		--placeholder name=Swifty --placeholder "author=the llm project" --epochs $(DEMO_FINETUNE_EPOCHS) --batch 8 --lr 1e-3 \
		--warmup 5 --val-fraction 0.1 --eval-every 0 --seed 1 --out runs/demo-identity
	$(LLM) generate --model runs/demo-identity --chat --prompt "Please introduce yourself briefly." --max-new-tokens 40 --temperature 0
	@echo "--- preference tuning: DPO continues that adapter on $(DEMO_DPO_PAIRS) of LLaMA-Factory's answer pairs (chosen over rejected), base + identity adapter as the frozen reference"
	@rm -rf runs/demo-dpo
	$(LLM) dpo --model .cache/SmolLM2-135M-Instruct.Q4_1.gguf --adapter runs/demo-identity --data .cache/llamafactory/dpo_en_demo.json \
		--max-samples $(DEMO_DPO_PAIRS) --max-length 192 --eval-every 0 --seed 1 --out runs/demo-dpo
	$(LLM) generate --model runs/demo-dpo --chat --prompt "Please introduce yourself briefly." --max-new-tokens 40 --temperature 0

test: setup
	swift test $(SWIFTFLAGS)

bench: build
	@bash scripts/setup-python.sh
	@bash scripts/fetch/corpus.sh
	@bash scripts/fetch/smollm2.sh
	@bash scripts/fetch/gemma3.sh
	@bash scripts/fetch/llama-cpp.sh
	python3 bench/run.py --llm $(LLM)

# Perplexity and KL divergence of every quantization type × method (rtn, gptq, awq) on a GPT it
# trains (about 20 minutes, once) and on SmolLM2-135M: about 90 minutes on 2 cores; results are
# kept in .cache/quality/results-16384.json, so a second run only measures what is missing.
quality: build
	@bash scripts/fetch/corpus.sh
	python3 bench/quant_quality.py --llm $(LLM)

# Every reader of user files (GGUF, safetensors, tokenizers, SentencePiece, datasets, adapters,
# checkpoints, token files) under libFuzzer: see scripts/fuzz.sh and README "Fuzzing".
FUZZ_RUNS ?= 1000000
FUZZ_SECONDS ?= 1800
fuzz: setup
	FUZZ_RUNS=$(FUZZ_RUNS) FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh

fixtures:
	@bash scripts/setup-python.sh
	python3 scripts/fixtures/make_tensor_fixtures.py
	python3 scripts/fixtures/make_tokenizer_fixtures.py
	@bash scripts/fetch/sentencepiece-tests.sh
	python3 scripts/fixtures/make_sentencepiece_fixtures.py
	python3 scripts/fixtures/make_kquant_fixtures.py
	python3 scripts/fixtures/make_llama_train_step.py
	python3 scripts/fixtures/make_mistral_fixtures.py
	python3 scripts/fixtures/make_gemma_fixtures.py
	python3 scripts/fixtures/make_lora_fixtures.py
	python3 scripts/fixtures/make_dpo_fixtures.py
	python3 scripts/fixtures/make_explain_fixtures.py
	@bash scripts/fetch/smollm2.sh
	@bash scripts/fetch/llama-cpp.sh
	@bash scripts/fetch/gemma3.sh
	python3 scripts/fixtures/make_llamacpp_fixtures.py
	python3 scripts/fixtures/make_quantize_fixtures.py

clean:
	rm -rf .build
