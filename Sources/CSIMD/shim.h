// x86 SIMD intrinsics (the compiler's own immintrin.h), for the 8-bit integer dot products of the
// quantized kernels (Tensors/Quantized/QuantizedKernelsAVX2.swift). Swift's portable SIMD types
// cannot express pmaddubsw / pmaddwd, which multiply bytes and add neighbours in one step.
// The kernels import it when the package was configured with LLM_AVX2 (see Package.swift); the
// thread pool imports it everywhere for llm_spin_pause (at the end), the one part for every CPU.
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

// Two blocks at once (a batch's inputs in pairs: input i in the low 256 bits, input i + 1 in the
// high 256 bits, the same weight block in both halves): acc + scale · float(u·s per group of 4),
// lane by lane exactly as llm_dot_u8s8 + _mm256_cvtepi32_ps + _mm256_fmadd_ps on each half. One
// 512-bit vpdpbusd, conversion and FMA where the build machine has AVX-512 VNNI; elsewhere the two
// halves through the 256-bit path (the same numbers either way).
static inline __attribute__((always_inline)) __m512 llm_dot_u8s8_fma_x2(__m512 acc, __m512i u, __m512i s, __m512 scale) {
#if defined(__AVX512F__) && defined(__AVX512VNNI__)
    __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, s);
    return _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(dot), acc);
#else
    __m256i ul = __builtin_shufflevector(u, u, 0, 1, 2, 3), uh = __builtin_shufflevector(u, u, 4, 5, 6, 7);
    __m256i sl = __builtin_shufflevector(s, s, 0, 1, 2, 3), sh = __builtin_shufflevector(s, s, 4, 5, 6, 7);
    __m256 al = __builtin_shufflevector(acc, acc, 0, 1, 2, 3, 4, 5, 6, 7), ah = __builtin_shufflevector(acc, acc, 8, 9, 10, 11, 12, 13, 14, 15);
    __m256 cl = __builtin_shufflevector(scale, scale, 0, 1, 2, 3, 4, 5, 6, 7), ch = __builtin_shufflevector(scale, scale, 8, 9, 10, 11, 12, 13, 14, 15);
    __m256 lo = _mm256_fmadd_ps(cl, _mm256_cvtepi32_ps(llm_dot_u8s8(ul, sl)), al);
    __m256 hi = _mm256_fmadd_ps(ch, _mm256_cvtepi32_ps(llm_dot_u8s8(uh, sh)), ah);
    return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#endif
}

// The same 256 bits in both halves of a 512-bit vector.
static inline __attribute__((always_inline)) __m512i llm_twice(__m256i v) {
    return __builtin_shufflevector(v, v, 0, 1, 2, 3, 0, 1, 2, 3);
}

// 16 lanes of int32 / float32 (512 bits), as Swift's SIMD16<Int32> / SIMD16<Float>.
typedef int llm_i32x16 __attribute__((__vector_size__(64)));
typedef float llm_f32x16 __attribute__((__vector_size__(64)));

// acc + Σ over groups of 4 of u8 × s8 products, lane by lane (16 lanes): one 512-bit vpdpbusd where
// the build machine has AVX-512 VNNI. Elsewhere two 256-bit halves through llm_dot_u8s8, whose
// pmaddubsw can saturate when u > 127: the integer GEMM (Int8GEMM.swift) only runs where
// llm_has_vnni512() is 1, and this path exists so that the package builds everywhere.
static inline __attribute__((always_inline)) llm_i32x16 llm_dpbusd_x16(llm_i32x16 acc, llm_i32x16 u, llm_i32x16 s) {
#if defined(__AVX512F__) && defined(__AVX512VNNI__)
    return (llm_i32x16)_mm512_dpbusd_epi32((__m512i)acc, (__m512i)u, (__m512i)s);
#else
    __m512i u64 = (__m512i)u, s64 = (__m512i)s;
    __m256i ul = __builtin_shufflevector(u64, u64, 0, 1, 2, 3), uh = __builtin_shufflevector(u64, u64, 4, 5, 6, 7);
    __m256i sl = __builtin_shufflevector(s64, s64, 0, 1, 2, 3), sh = __builtin_shufflevector(s64, s64, 4, 5, 6, 7);
    __m256i lo = llm_dot_u8s8(ul, sl), hi = llm_dot_u8s8(uh, sh);
    return acc + (llm_i32x16)__builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7);
#endif
}

// int32 → float32, lane by lane (vcvtdq2ps).
static inline __attribute__((always_inline)) llm_f32x16 llm_float_x16(llm_i32x16 v) {
    return __builtin_convertvector(v, llm_f32x16);
}

// 1 when llm_dpbusd_x16 is one AVX-512 VNNI instruction.
static inline int llm_has_vnni512(void) {
#if defined(__AVX512F__) && defined(__AVX512VNNI__)
    return 1;
#else
    return 0;
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

// An IEEE half (the 16 bits of h) as a float, exactly: vmovd then F16C's vcvtph2ps, both of which
// write their whole register. Written as two instructions because the compiler, given the
// intrinsics (_cvtsh_ss, or _mm_cvtph_ps of _mm_cvtsi32_si128), emits vpinsrw into the low lanes of
// a register it picks freely, so the conversion also waits for that register's last writer; in a
// block loop that is often the running sum, and each block's scale then waited for the previous
// block's sum (Tensors/Quantized/QuantizedMatrix.swift: loadHalf).
static inline __attribute__((always_inline)) float llm_half_to_float(unsigned short h) {
#if defined(__F16C__)
    __m128 r;
    __asm__("vmovd %k1, %0\n\tvcvtph2ps %0, %0" : "=x"(r) : "r"((unsigned)h));
    return r[0];
#else
    _Float16 f;
    __builtin_memcpy(&f, &h, 2);
    return (float)f;
#endif
}
#endif

// One pause in a spin-wait (Parallel.swift's thread pool): the x86 `pause` instruction (tens of
// cycles on current cores, and it tells the core that the loop only waits) or ARM's `yield`. A
// plain Swift loop of adds would be removed by the optimizer, leaving a wait far shorter than meant.
static inline __attribute__((always_inline)) void llm_spin_pause(void) {
#if defined(__x86_64__)
    _mm_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}
