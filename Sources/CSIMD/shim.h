// x86 SIMD intrinsics (the compiler's own immintrin.h), for the 8-bit integer dot products of the
// quantized kernels (Tensors/Quantized/QuantizedKernelsAVX2.swift). Swift's portable SIMD types
// cannot express pmaddubsw / pmaddwd, which multiply bytes and add neighbours in one step.
// Only imported when the package was configured with LLM_AVX2 (see Package.swift).
#if defined(__x86_64__)
#include <immintrin.h>
#endif
