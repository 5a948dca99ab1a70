// x86 SIMD intrinsics (the compiler's own immintrin.h), for the 8-bit integer dot products of the
// quantized kernels (Tensors/Quantized/QuantizedKernelsAVX2.swift). Swift's portable SIMD types
// cannot express pmaddubsw / pmaddwd, which multiply bytes and add neighbours in one step.
// The kernels import it when the package was configured with LLM_AVX2 (see Package.swift); the
// thread pool imports it everywhere for llm_spin_pause (at the end), the one part for every CPU.
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#if defined(__x86_64__)
// acc + Σ over groups of 4 of u8 × s8 products → 8 × i32: one vpdpbusd where the build machine
// has VNNI (AVX-VNNI or AVX512-VNNI with VL), else pmaddubsw + pmaddwd + add, identical while the
// pmaddubsw pair sums cannot saturate (every caller: u ≤ 31, or Q8_0's |w| ≤ 128 where there is no
// VNNI; pairs ≤ 2·128·127 < 2^15). With VNNI any unsigned byte, such as Q8_0's w + 128.
static inline __attribute__((always_inline)) __m256i llm_dpbusd_x8(__m256i acc, __m256i u, __m256i s) {
#if defined(__AVXVNNI__)
    return _mm256_dpbusd_avx_epi32(acc, u, s);
#elif defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_dpbusd_epi32(acc, u, s);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

// The same products from zero (the adding of zero folds away).
static inline __attribute__((always_inline)) __m256i llm_dot_u8s8(__m256i u, __m256i s) {
    return llm_dpbusd_x8(_mm256_setzero_si256(), u, s);
}

// One 32-value weight block against 8 inputs (Tensors/Quantized/QuantizedKernelsAVX2.swift,
// `InputGroups`): lane i = Σ_v u_v · x_i,v, exactly. lo holds the weight's unsigned values 0–15 as
// bytes and hi values 16–31, each the same 16 bytes in both 128-bit halves; x is the 8 inputs'
// int8 values of the block as [group k of 4 values][input i][4 bytes] (256 bytes). Each step
// broadcasts 4 weight bytes to all 8 lanes (vpshufd) and adds 4 products to each input's lane;
// four chains of 2 steps (short, so that the next blocks' work enters the scheduler sooner), then their sum.
static inline __attribute__((always_inline)) __m256i llm_dot_block_x8(__m256i lo, __m256i hi, const void *x) {
    const __m256i *p = (const __m256i *)x;
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    a = llm_dpbusd_x8(a, _mm256_shuffle_epi32(lo, 0x00), _mm256_loadu_si256(p + 0));
    b = llm_dpbusd_x8(b, _mm256_shuffle_epi32(lo, 0x55), _mm256_loadu_si256(p + 1));
    c = llm_dpbusd_x8(c, _mm256_shuffle_epi32(lo, 0xAA), _mm256_loadu_si256(p + 2));
    d = llm_dpbusd_x8(d, _mm256_shuffle_epi32(lo, 0xFF), _mm256_loadu_si256(p + 3));
    a = llm_dpbusd_x8(a, _mm256_shuffle_epi32(hi, 0x00), _mm256_loadu_si256(p + 4));
    b = llm_dpbusd_x8(b, _mm256_shuffle_epi32(hi, 0x55), _mm256_loadu_si256(p + 5));
    c = llm_dpbusd_x8(c, _mm256_shuffle_epi32(hi, 0xAA), _mm256_loadu_si256(p + 6));
    d = llm_dpbusd_x8(d, _mm256_shuffle_epi32(hi, 0xFF), _mm256_loadu_si256(p + 7));
    return _mm256_add_epi32(_mm256_add_epi32(a, b), _mm256_add_epi32(c, d));
}

// As llm_dot_block_x8 for signed weight bytes (Q8_0 where there is no VNNI, whose pmaddubsw would
// saturate on w + 128): |w| × (x with w's sign), the unsigned × signed form pmaddubsw needs.
static inline __attribute__((always_inline)) __m256i llm_dot_block_signed_x8(__m256i lo, __m256i hi, const void *x) {
    const __m256i *p = (const __m256i *)x;
    __m256i a = _mm256_setzero_si256(), b = _mm256_setzero_si256(), w;
#define LLM_SIGNED_STEP(acc, v, imm, k) \
    w = _mm256_shuffle_epi32(v, imm); \
    acc = llm_dpbusd_x8(acc, _mm256_sign_epi8(w, w), _mm256_sign_epi8(_mm256_loadu_si256(p + k), w));
    LLM_SIGNED_STEP(a, lo, 0x00, 0) LLM_SIGNED_STEP(b, lo, 0x55, 1) LLM_SIGNED_STEP(a, lo, 0xAA, 2) LLM_SIGNED_STEP(b, lo, 0xFF, 3)
    LLM_SIGNED_STEP(a, hi, 0x00, 4) LLM_SIGNED_STEP(b, hi, 0x55, 5) LLM_SIGNED_STEP(a, hi, 0xAA, 6) LLM_SIGNED_STEP(b, hi, 0xFF, 7)
#undef LLM_SIGNED_STEP
    return _mm256_add_epi32(a, b);
}

// Lane j = the sum of v_j's 8 lanes (8 blocks' dot products of one input → one lane per block).
static inline __attribute__((always_inline)) __m256i llm_sum_lanes_x8(__m256i v0, __m256i v1, __m256i v2, __m256i v3,
                                                                      __m256i v4, __m256i v5, __m256i v6, __m256i v7) {
    // Per 128-bit half, hadd(a, b) = [a0+a1, a2+a3, b0+b1, b2+b3].
    __m256i u0 = _mm256_hadd_epi32(_mm256_hadd_epi32(v0, v1), _mm256_hadd_epi32(v2, v3));   // [v0..v3 low 4 | v0..v3 high 4]
    __m256i u1 = _mm256_hadd_epi32(_mm256_hadd_epi32(v4, v5), _mm256_hadd_epi32(v6, v7));   // [v4..v7 low 4 | v4..v7 high 4]
    return _mm256_add_epi32(_mm256_permute2x128_si256(u0, u1, 0x20), _mm256_permute2x128_si256(u0, u1, 0x31));
}

// The 32-bit words at base + stride·j for j < count (0 for the other lanes, which read nothing).
static inline __attribute__((always_inline)) __m256i llm_gather_words(const void *base, int stride, int count) {
    __m256i index = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(stride));
    __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), (const int *)base, index, mask, 1);
}

// 8 IEEE halves as floats: the low 16 bits of each 32-bit lane, or the high 16 bits when high != 0.
static inline __attribute__((always_inline)) __m256 llm_halves_x8(__m256i v, int high) {
    __m256i h = high ? _mm256_srli_epi32(v, 16) : _mm256_and_si256(v, _mm256_set1_epi32(0xFFFF));
    __m256i packed = _mm256_packus_epi32(h, h);                        // per half: [h0..h3, h0..h3] as u16
    return _mm256_cvtph_ps(_mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08)));
}

// v's low (high = 0) or high 128 bits in both halves (vperm2i128).
static inline __attribute__((always_inline)) __m256i llm_half_twice(__m256i v, int high) {
    return high ? _mm256_permute2x128_si256(v, v, 0x11) : _mm256_permute2x128_si256(v, v, 0x00);
}

// 16 bytes at p in both 128-bit halves (vbroadcasti128).
static inline __attribute__((always_inline)) __m256i llm_bytes16_twice(const void *p) {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
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
