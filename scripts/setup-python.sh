#!/usr/bin/env bash
# Python packages for the side-by-side benchmarks and for regenerating fixtures (never needed by
# the product or its tests): numpy, tiktoken, HF tokenizers, regex, and PyTorch's CPU-only wheel (plain `torch` would pull in
# gigabytes of GPU libraries).
set -euo pipefail
python3 -c "import numpy" 2>/dev/null || pip install -q numpy
python3 -c "import torch" 2>/dev/null || pip install -q "torch==2.13.0+cpu"
python3 -c "import tiktoken" 2>/dev/null || pip install -q tiktoken
python3 -c "import tokenizers" 2>/dev/null || pip install -q tokenizers
python3 -c "import regex" 2>/dev/null || pip install -q regex
