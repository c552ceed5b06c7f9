// AVX2 + FMA instantiation of kernels_impl.h (8 floats per vector). Everything in the target
// region lives in namespace jaxlstm::avx2, so no AVX2 code can be picked by the linker for a
// generic inline function (standard headers are included before the region).
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "lstm_kernels.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

namespace jaxlstm {
namespace avx2 {

struct Vec {
  using R = __m256;
  static constexpr int V = 8;
  static inline R zero() { return _mm256_setzero_ps(); }
  static inline R set1(float a) { return _mm256_set1_ps(a); }
  static inline R load(const float* p) { return _mm256_loadu_ps(p); }
  static inline void store(float* p, R v) { _mm256_storeu_ps(p, v); }
  static inline __m256i mask(int n) {
    alignas(32) static const int32_t table[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                  0,  0,  0,  0,  0,  0,  0,  0};
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(table + 8 - n));
  }
  static inline R loadn(const float* p, int n) {
    if (n >= V) return load(p);
    if (n <= 0) return zero();
    return _mm256_maskload_ps(p, mask(n));
  }
  static inline void storen(float* p, R v, int n) {
    if (n >= V) return store(p, v);
    if (n <= 0) return;
    _mm256_maskstore_ps(p, mask(n), v);
  }
  static inline R add(R a, R b) { return _mm256_add_ps(a, b); }
  static inline R sub(R a, R b) { return _mm256_sub_ps(a, b); }
  static inline R mul(R a, R b) { return _mm256_mul_ps(a, b); }
  static inline R rcp(R x) { return _mm256_rcp_ps(x); }
  static inline R fmadd(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  static inline R min(R a, R b) { return _mm256_min_ps(a, b); }
  static inline R max(R a, R b) { return _mm256_max_ps(a, b); }
  static inline R floor(R x) { return _mm256_floor_ps(x); }
  // 2^n for integer-valued n in [-127, 128] (n = -127 gives 0, 128 gives inf).
  static inline R pow2n(R n) {
    const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
  }
  static inline R abs(R x) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x); }
  static inline R copysign(R mag, R sgn) {
    const R s = _mm256_set1_ps(-0.0f);
    return _mm256_or_ps(_mm256_andnot_ps(s, mag), _mm256_and_ps(s, sgn));
  }
  // a < b ? x : y, per lane
  static inline R select_lt(R a, R b, R x, R y) {
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_LT_OQ));
  }
};

#include "kernels_impl.h"

constexpr int FWD_MR = 3;  // 3 x 4 accumulators + 3 broadcasts + 1 panel vector = 16 ymm
constexpr int BWD_MR = 4;
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

}  // namespace avx2
}  // namespace jaxlstm

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

const jaxlstm::IsaKernels* jaxlstm::avx2_kernels() {
  static const IsaKernels k = {"avx2", avx2::V, avx2::FWD_MR, avx2::BWD_MR,
                               avx2::BWD_NV, avx2::fwd_pack, avx2::fwd_step,
                               avx2::step_partial, avx2::step_finish, avx2::bwd_pack,
                               avx2::bwd_stage};
  return &k;
}
