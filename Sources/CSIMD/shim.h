// x86 SIMD intrinsics (the compiler's own immintrin.h), for the 8-bit integer dot products of the
// quantized kernels (Tensors/Quantized/QuantizedKernelsAVX2.swift). Swift's portable SIMD types
// cannot express pmaddubsw / pmaddwd, which multiply bytes and add neighbours in one step.
// Only imported when the package was configured with LLM_AVX2 (see Package.swift).
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#if defined(__x86_64__)
// Σ over groups of 4 of u8 × s8 products → 8 × i32, for operands whose pmaddubsw pair sums cannot
// saturate (every caller: |u·s| pairs ≤ 2·63·127). One vpdpbusd where the build machine has VNNI
// (AVX-VNNI or AVX512-VNNI with VL), else pmaddubsw + pmaddwd: identical results either way.
static inline __attribute__((always_inline)) __m256i llm_dot_u8s8(__m256i u, __m256i s) {
#if defined(__AVXVNNI__)
    return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s);
#elif defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

// 1 when llm_dot_u8s8 compiled to VNNI (for `llm bench quant`'s header line).
static inline int llm_has_vnni(void) {
#if defined(__AVXVNNI__) || (defined(__AVX512VNNI__) && defined(__AVX512VL__))
    return 1;
#else
    return 0;
#endif
}
#endif
