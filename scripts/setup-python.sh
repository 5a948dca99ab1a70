#!/usr/bin/env bash
# Python packages for the side-by-side benchmarks and for regenerating fixtures (never needed by
# the product or its tests): numpy, PyTorch's CPU-only wheel (plain `torch` from PyPI is the CUDA
# build: a 527 MB wheel that pulls in gigabytes of NVIDIA libraries), HF transformers, safetensors
# and tokenizers, gguf-py, tiktoken, regex, peft (LoRA, for bench/torch_finetune.py) and sentencepiece (its fixtures and
# encoding-speed anchor).
# Versions are the ones the committed fixtures record (their *_version keys); each package is
# installed only when it does not import yet.
# `torch==2.13.0+cpu` is not on PyPI itself (PyPI takes no local "+cpu" versions): pip finds it
# only through a local wheel folder (find-links, e.g. PIP_FIND_LINKS=/opt/wheels).
set -euo pipefail
python3 -c "import numpy" 2>/dev/null || pip install -q numpy
python3 -c "import torch" 2>/dev/null || pip install -q "torch==2.13.0+cpu" || {
    echo "setup-python.sh: torch==2.13.0+cpu not found; it is PyTorch's CPU wheel, which pip sees" \
         "only through a wheel folder (find-links), not on PyPI" >&2
    exit 1
}
python3 -c "import tokenizers" 2>/dev/null || pip install -q "tokenizers==0.23.3"
python3 -c "import safetensors" 2>/dev/null || pip install -q safetensors
python3 -c "import transformers" 2>/dev/null || pip install -q "transformers==5.24.0"
python3 -c "import gguf" 2>/dev/null || pip install -q "gguf==0.19.0"
python3 -c "import tiktoken" 2>/dev/null || pip install -q "tiktoken==0.14.0"
python3 -c "import regex" 2>/dev/null || pip install -q "regex==2026.5.9"
python3 -c "import peft" 2>/dev/null || pip install -q "peft==0.21.2"
python3 -c "import sentencepiece" 2>/dev/null || pip install -q "sentencepiece==0.2.3"
