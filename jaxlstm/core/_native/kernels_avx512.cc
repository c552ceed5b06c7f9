// AVX-512 (F + DQ) instantiation of kernels_impl.h (16 floats per vector, mask registers for the
// tails). Same isolation as kernels_avx2.cc: everything compiled for the ISA is in
// jaxlstm::avx512.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "lstm_kernels.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512dq,avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx2,fma")
#endif

namespace jaxlstm {
namespace avx512 {

struct Vec {
  using R = __m512;
  static constexpr int V = 16;
  static inline R zero() { return _mm512_setzero_ps(); }
  static inline R set1(float a) { return _mm512_set1_ps(a); }
  static inline R load(const float* p) { return _mm512_loadu_ps(p); }
  static inline void store(float* p, R v) { _mm512_storeu_ps(p, v); }
  static inline __mmask16 mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static inline R loadn(const float* p, int n) {
    if (n >= V) return load(p);
    if (n <= 0) return zero();
    return _mm512_maskz_loadu_ps(mask(n), p);
  }
  static inline void storen(float* p, R v, int n) {
    if (n >= V) return store(p, v);
    if (n <= 0) return;
    _mm512_mask_storeu_ps(p, mask(n), v);
  }
  static inline R add(R a, R b) { return _mm512_add_ps(a, b); }
  static inline R sub(R a, R b) { return _mm512_sub_ps(a, b); }
  static inline R mul(R a, R b) { return _mm512_mul_ps(a, b); }
  static inline R rcp(R x) { return _mm512_rcp14_ps(x); }
  static inline R fmadd(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static inline R min(R a, R b) { return _mm512_min_ps(a, b); }
  static inline R max(R a, R b) { return _mm512_max_ps(a, b); }
  static inline R floor(R x) {
    return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  }
  // 2^n for integer-valued n in [-127, 128] (n = -127 gives 0, 128 gives inf), as in AVX2.
  static inline R pow2n(R n) {
    const __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
  }
  static inline R abs(R x) {
    return _mm512_castsi512_ps(
        _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff)));
  }
  static inline R copysign(R mag, R sgn) {
    const __m512i s = _mm512_set1_epi32(static_cast<int>(0x80000000u));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_andnot_si512(s, _mm512_castps_si512(mag)),
                                               _mm512_and_si512(s, _mm512_castps_si512(sgn))));
  }
  static inline R select_lt(R a, R b, R x, R y) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), y, x);
  }
};

#include "kernels_impl.h"

constexpr int FWD_MR = 6;  // 6 x 4 accumulators + 6 broadcasts + 1 panel vector = 31 zmm
constexpr int BWD_MR = 8;  // 8 x 2 accumulators + 8 + 1 = 25 zmm
constexpr int BWD_NV = 2;

static void fwd_step(const FwdProblem& p, int64_t t, int64_t pan, int64_t r0, int64_t r1) {
  fwd_rows<FWD_MR>(p, t, pan, r0, r1);
}
static void step_finish(const StepProblem& p, int64_t pan, int64_t r0, int64_t r1) {
  step_rows<FWD_MR>(p, pan, r0, r1);
}
static void bwd_stage(const BwdProblem& p, int64_t s, int64_t tile, int64_t r0, int64_t r1) {
  bwd_rows<BWD_MR, BWD_NV>(p, s, tile, r0, r1);
}

}  // namespace avx512
}  // namespace jaxlstm

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

const jaxlstm::IsaKernels* jaxlstm::avx512_kernels() {
  static const IsaKernels k = {"avx512", avx512::V, avx512::FWD_MR, avx512::BWD_MR,
                               avx512::BWD_NV, avx512::fwd_pack, avx512::fwd_step,
                               avx512::step_partial, avx512::step_finish, avx512::bwd_pack,
                               avx512::bwd_stage};
  return &k;
}
