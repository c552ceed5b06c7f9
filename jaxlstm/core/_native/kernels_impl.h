// The LSTM kernels, written once over a vector-traits struct `Vec` and included by each ISA file
// inside its own namespace, after `#pragma GCC target(...)` (so every function here is compiled for
// that ISA and nothing here is shared with generic code). Requires <algorithm>, <cstdint> and
// "lstm_kernels.h" included before, outside the target region.
//
// Vec provides: R (register type), V (lanes), zero, set1, load/store (unaligned), loadn/storen
// (first n lanes, n may be <= 0 or >= V), add, sub, mul, fmadd, min, max, floor, pow2n, rcp
// (approximate reciprocal, >= 12 bits), abs, copysign, select_lt.

using R = typename Vec::R;
static constexpr int V = Vec::V;

// ---------------------------------------------------------------------------------------------
// Activations (Cephes single-precision algorithms: ~1 ulp exp, tanh with a polynomial near 0 so
// small arguments keep their relative accuracy).
// ---------------------------------------------------------------------------------------------

// exp(x) for x clamped to [-88.38, 88]: finite, so the reciprocals below never see inf.
static inline R v_exp(R x) {
  x = Vec::min(Vec::max(x, Vec::set1(-88.3762626647949f)), Vec::set1(88.0f));
  R fx = Vec::floor(Vec::fmadd(x, Vec::set1(1.44269504088896341f), Vec::set1(0.5f)));
  R r = Vec::fmadd(fx, Vec::set1(-0.693359375f), x);
  r = Vec::fmadd(fx, Vec::set1(2.12194440e-4f), r);
  R p = Vec::set1(1.9875691500E-4f);
  p = Vec::fmadd(p, r, Vec::set1(1.3981999507E-3f));
  p = Vec::fmadd(p, r, Vec::set1(8.3334519073E-3f));
  p = Vec::fmadd(p, r, Vec::set1(4.1665795894E-2f));
  p = Vec::fmadd(p, r, Vec::set1(1.6666665459E-1f));
  p = Vec::fmadd(p, r, Vec::set1(5.0000001201E-1f));
  R y = Vec::fmadd(Vec::mul(p, r), r, Vec::add(r, Vec::set1(1.0f)));
  return Vec::mul(y, Vec::pow2n(fx));
}

// 1/d for finite d >= 1: the hardware estimate and one Newton step (about 1 ulp; a division
// costs several times more and there are five per hidden unit and step).
static inline R v_recip(R d) {
  const R r = Vec::rcp(d);
  return Vec::fmadd(r, Vec::fmadd(Vec::sub(Vec::zero(), d), r, Vec::set1(1.0f)), r);
}

static inline R v_sigmoid(R x) {
  return v_recip(Vec::add(Vec::set1(1.0f), v_exp(Vec::sub(Vec::zero(), x))));
}

static inline R v_tanh(R x) {
  const R ax = Vec::abs(x);
  const R z = Vec::mul(x, x);
  R p = Vec::set1(-5.70498872745E-3f);
  p = Vec::fmadd(p, z, Vec::set1(2.06390887954E-2f));
  p = Vec::fmadd(p, z, Vec::set1(-5.37397155531E-2f));
  p = Vec::fmadd(p, z, Vec::set1(1.33314422036E-1f));
  p = Vec::fmadd(p, z, Vec::set1(-3.33332819422E-1f));
  const R small = Vec::fmadd(Vec::mul(p, z), x, x);
  const R e = v_exp(Vec::add(ax, ax));
  const R one = Vec::set1(1.0f);
  const R large = Vec::sub(one, Vec::mul(Vec::set1(2.0f), v_recip(Vec::add(e, one))));
  return Vec::select_lt(ax, Vec::set1(0.625f), small, Vec::copysign(large, x));
}

// ---------------------------------------------------------------------------------------------
// Micro-kernel: acc[r][q] += sum_k A[r*lda + k] * Bp[k*NV*V + q*V ...], Bp a packed column panel.
// All MR broadcasts are loaded first, then each panel vector once (MR + 1 + MR*NV registers:
// AVX2 3 + 1 + 12 = 16, AVX-512 6 + 1 + 24 = 31).
// ---------------------------------------------------------------------------------------------

template <int MR, int NV>
static inline void gemm_acc(R (&acc)[MR][NV], const float* A, int64_t lda, const float* Bp,
                            int64_t K) {
  for (int64_t k = 0; k < K; ++k) {
    R a[MR];
    for (int r = 0; r < MR; ++r) a[r] = Vec::set1(A[r * lda + k]);
    const float* b = Bp + k * (NV * V);
    for (int q = 0; q < NV; ++q) {
      const R bq = Vec::load(b + q * V);
      for (int r = 0; r < MR; ++r) acc[r][q] = Vec::fmadd(a[r], bq, acc[r][q]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Forward
// ---------------------------------------------------------------------------------------------

static constexpr int FWD_NV = 4;  // one vector per gate: a panel is [i | f | g | o] x V units

static void fwd_pack(const FwdProblem& p, int64_t pan) {
  const int64_t H = p.H, u0 = pan * V, n = std::min<int64_t>(V, H - u0);
  auto pack = [&](const float* src, int64_t K, float* dst) {
    for (int64_t k = 0; k < K; ++k)
      for (int q = 0; q < 4; ++q)
        for (int u = 0; u < V; ++u)
          dst[(k * 4 + q) * V + u] = u < n ? src[k * 4 * H + q * H + u0 + u] : 0.0f;
  };
  pack(p.W, p.I, p.Wp + pan * p.I * 4 * V);
  pack(p.U, p.H, p.Up + pan * p.H * 4 * V);
  if (p.bias) pack(p.bias, 1, p.bp + pan * 4 * V);
}

// The gates of step t for rows [r0, r0 + MR) and panel pan, from the pre-activations acc (bias
// included) and the state hp/cp (row stride ld) the step starts from: residuals, outputs, state.
template <int MR>
static void fwd_finish(const FwdProblem& p, int64_t t, int64_t pan, int64_t r0,
                       const R (&acc)[MR][FWD_NV], const float* hp, const float* cp, int64_t ld) {
  const int64_t B = p.B, H = p.H, Hp = p.Hp;
  const int64_t u0 = pan * V;
  const int n = static_cast<int>(std::min<int64_t>(V, H - u0));
  for (int r = 0; r < MR; ++r) {
    const int64_t row = r0 + r, tb = t * p.st + row * p.sb;
    if (p.z) {
      float* zr = p.z + tb * 4 * H + u0;
      for (int q = 0; q < 4; ++q) Vec::storen(zr + q * H, acc[r][q], n);
    }
    const R i = v_sigmoid(acc[r][0]);
    const R f = v_sigmoid(acc[r][1]);
    const R g = v_tanh(acc[r][2]);
    const R o = v_sigmoid(acc[r][3]);
    const R h_old = Vec::loadn(hp + r * ld + u0, n);
    const R c_old = Vec::loadn(cp + r * ld + u0, n);
    if (p.hprev) {
      Vec::storen(p.hprev + tb * H + u0, h_old, n);
      Vec::storen(p.cprev + tb * H + u0, c_old, n);
    }
    const R c_new = Vec::fmadd(f, c_old, Vec::mul(i, g));
    const R h_new = Vec::mul(o, v_tanh(c_new));
    R y = h_new, h_keep = h_new, c_keep = c_new;
    if (p.keep && !p.keep[tb]) {
      // A step that is not kept passes the state through and emits the previous h (or zeros).
      h_keep = h_old;
      c_keep = c_old;
      y = p.zero_output ? Vec::zero() : h_old;
    }
    if (p.valid && !p.valid[tb]) y = Vec::zero();
    Vec::storen(p.ys + tb * H + u0, y, n);
    if (t + 1 < p.T) {  // the state the next step starts from
      Vec::store(p.hbuf + (((t + 1) & 1) * B + row) * Hp + u0, h_keep);
      Vec::store(p.cbuf + row * Hp + u0, c_keep);
    }
    if (t == p.T - 1) {
      Vec::storen(p.hT + row * H + u0, h_keep, n);
      Vec::storen(p.cT + row * H + u0, c_keep, n);
    }
  }
}

template <int MR>
static void fwd_block(const FwdProblem& p, int64_t t, int64_t pan, int64_t r0) {
  const int64_t B = p.B, I = p.I, H = p.H, Hp = p.Hp;
  R acc[MR][FWD_NV];
  for (int q = 0; q < FWD_NV; ++q) {
    const R b0 = p.bias ? Vec::load(p.bp + pan * 4 * V + q * V) : Vec::zero();
    for (int r = 0; r < MR; ++r) acc[r][q] = b0;
  }
  gemm_acc<MR, FWD_NV>(acc, p.x + (t * p.st + r0 * p.sb) * I, p.sb * I, p.Wp + pan * I * 4 * V, I);
  // The state the step starts from: the user's h0/c0 at t = 0, else the internal buffers.
  const float* hp = t == 0 ? p.h0 + r0 * H : p.hbuf + ((t & 1) * B + r0) * Hp;
  const float* cp = t == 0 ? p.c0 + r0 * H : p.cbuf + r0 * Hp;
  const int64_t ld = t == 0 ? H : Hp;
  gemm_acc<MR, FWD_NV>(acc, hp, ld, p.Up + pan * H * 4 * V, H);
  fwd_finish<MR>(p, t, pan, r0, acc, hp, cp, ld);
}

template <int MR>
static void fwd_rows(const FwdProblem& p, int64_t t, int64_t pan, int64_t r0, int64_t r1) {
  int64_t r = r0;
  for (; r + MR <= r1; r += MR) fwd_block<MR>(p, t, pan, r);
  switch (r1 - r) {  // the row tail
    case 0: break;
#define JAXLSTM_TAIL(k) case k: if constexpr (k < MR) fwd_block<k>(p, t, pan, r); break;
    JAXLSTM_TAIL(1) JAXLSTM_TAIL(2) JAXLSTM_TAIL(3) JAXLSTM_TAIL(4) JAXLSTM_TAIL(5)
    JAXLSTM_TAIL(6) JAXLSTM_TAIL(7)
#undef JAXLSTM_TAIL
  }
}

// ---------------------------------------------------------------------------------------------
// One step (StepProblem)
// ---------------------------------------------------------------------------------------------

static void step_partial(const StepProblem& sp, int64_t chunk, int64_t cblock) {
  const FwdProblem& p = sp.f;
  const int64_t I = p.I, H = p.H, K = I + H, N = 4 * H, B = p.B;
  const int64_t k0 = K * chunk / sp.R, k1 = K * (chunk + 1) / sp.R;
  const int64_t j0 = cblock * sp.CW, j1 = std::min(N, j0 + sp.CW);
  float* const zp = sp.zpart + chunk * B * N;
  // Row k of [W; U] and its input [x | h0] for batch row b (T = 1: x is [B][I]).
  auto wrow = [&](int64_t k) { return k < I ? p.W + k * N : p.U + (k - I) * N; };
  auto in = [&](int64_t b, int64_t k) { return k < I ? p.x[b * I + k] : p.h0[b * H + k - I]; };
  constexpr int KG = 4;  // weight rows per pass over the accumulators
  for (int64_t k = k0; k < k1; k += KG) {
    const int kg = static_cast<int>(std::min<int64_t>(KG, k1 - k));
    const float* w[KG];
    for (int i = 0; i < KG; ++i) w[i] = wrow(k + std::min(i, kg - 1));
    for (int64_t b = 0; b < B; ++b) {
      R a[KG];
      for (int i = 0; i < KG; ++i) a[i] = i < kg ? Vec::set1(in(b, k + i)) : Vec::zero();
      float* z = zp + b * N;
      const bool first = k == k0;
      auto update = [&](int64_t j, int nl) {
        R acc = first ? Vec::zero() : Vec::loadn(z + j, nl);
        acc = Vec::fmadd(a[0], Vec::loadn(w[0] + j, nl), acc);
        if (kg > 1) acc = Vec::fmadd(a[1], Vec::loadn(w[1] + j, nl), acc);
        if (kg > 2) acc = Vec::fmadd(a[2], Vec::loadn(w[2] + j, nl), acc);
        if (kg > 3) acc = Vec::fmadd(a[3], Vec::loadn(w[3] + j, nl), acc);
        Vec::storen(z + j, acc, nl);
      };
      int64_t j = j0;
      if (kg == KG) {  // the common case: four rows, full vectors, no branches in the loop
        for (; j + V <= j1; j += V) {
          R acc = first ? Vec::zero() : Vec::load(z + j);
          acc = Vec::fmadd(a[0], Vec::load(w[0] + j), acc);
          acc = Vec::fmadd(a[1], Vec::load(w[1] + j), acc);
          acc = Vec::fmadd(a[2], Vec::load(w[2] + j), acc);
          acc = Vec::fmadd(a[3], Vec::load(w[3] + j), acc);
          Vec::store(z + j, acc);
        }
      }
      for (; j < j1; j += V) update(j, static_cast<int>(std::min<int64_t>(V, j1 - j)));
    }
  }
}

template <int MR>
static void step_block(const StepProblem& sp, int64_t pan, int64_t r0) {
  const FwdProblem& p = sp.f;
  const int64_t H = p.H, N = 4 * H, u0 = pan * V;
  const int n = static_cast<int>(std::min<int64_t>(V, H - u0));
  R acc[MR][FWD_NV];
  for (int q = 0; q < FWD_NV; ++q) {
    const R b0 = p.bias ? Vec::loadn(p.bias + q * H + u0, n) : Vec::zero();
    for (int r = 0; r < MR; ++r) acc[r][q] = b0;
  }
  for (int64_t c = 0; c < sp.R; ++c)
    for (int r = 0; r < MR; ++r)
      for (int q = 0; q < FWD_NV; ++q)
        acc[r][q] = Vec::add(acc[r][q], Vec::loadn(sp.zpart + (c * p.B + r0 + r) * N + q * H + u0, n));
  fwd_finish<MR>(p, 0, pan, r0, acc, p.h0 + r0 * H, p.c0 + r0 * H, H);
}

template <int MR>
static void step_rows(const StepProblem& sp, int64_t pan, int64_t r0, int64_t r1) {
  int64_t r = r0;
  for (; r + MR <= r1; r += MR) step_block<MR>(sp, pan, r);
  switch (r1 - r) {  // the row tail
    case 0: break;
#define JAXLSTM_TAIL(k) case k: if constexpr (k < MR) step_block<k>(sp, pan, r); break;
    JAXLSTM_TAIL(1) JAXLSTM_TAIL(2) JAXLSTM_TAIL(3) JAXLSTM_TAIL(4) JAXLSTM_TAIL(5)
    JAXLSTM_TAIL(6) JAXLSTM_TAIL(7)
#undef JAXLSTM_TAIL
  }
}

// ---------------------------------------------------------------------------------------------
// Backward
// ---------------------------------------------------------------------------------------------

static void bwd_pack(const BwdProblem& p, int64_t tile) {
  const int64_t H = p.H, K = 4 * H, Wt = p.Wt, u0 = tile * Wt;
  float* dst = p.UTp + tile * K * Wt;
  for (int64_t u = 0; u < Wt; ++u) {
    const bool in = u0 + u < H;
    const float* src = p.U + (u0 + u) * K;  // row u0+u of U is column u0+u of U^T
    for (int64_t k = 0; k < K; ++k) dst[k * Wt + u] = in ? src[k] : 0.0f;
  }
}

template <int MR, int NV>
static void bwd_block(const BwdProblem& p, int64_t s, int64_t tile, int64_t r0) {
  const int64_t H = p.H, Hp = p.Hp, T = p.T;
  const int64_t u0 = tile * p.Wt;
  int nl[NV];
  for (int v = 0; v < NV; ++v)
    nl[v] = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(V, H - u0 - v * V)));
  R dh[MR][NV];
  if (s == T) {
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) dh[r][v] = Vec::loadn(p.dhT + (r0 + r) * H + u0 + v * V, nl[v]);
  } else {
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) dh[r][v] = Vec::load(p.skipbuf + (r0 + r) * Hp + u0 + v * V);
    // dh_{s} = dz_s U^T (+ the pass-through of a step that was not kept, added above).
    gemm_acc<MR, NV>(dh, p.dz + (s * p.st + r0 * p.sb) * 4 * H, p.sb * 4 * H, p.UTp + tile * 4 * H * p.Wt,
                      4 * H);
  }
  if (s == 0) {
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) {
        const int64_t off = (r0 + r) * H + u0 + v * V;
        Vec::storen(p.dh0 + off, dh[r][v], nl[v]);
        Vec::storen(p.dc0 + off, Vec::load(p.dcbuf + (r0 + r) * Hp + u0 + v * V), nl[v]);
      }
    return;
  }
  const int64_t t = s - 1;
  const R one = Vec::set1(1.0f);
  for (int r = 0; r < MR; ++r) {
    const int64_t row = r0 + r, tb = t * p.st + row * p.sb;
    const bool has_dy = !(p.valid && !p.valid[tb]);
    const bool kept = !(p.keep && !p.keep[tb]);
    for (int v = 0; v < NV; ++v) {
      const int n = nl[v];
      const int64_t uu = u0 + v * V;
      const R dhc = dh[r][v];
      const R dc = s == T ? Vec::loadn(p.dcT + row * H + uu, n) : Vec::load(p.dcbuf + row * Hp + uu);
      const R dy = has_dy ? Vec::loadn(p.dys + tb * H + uu, n) : Vec::zero();
      R dhn, dcn, dh_skip, dc_skip;
      if (kept) {
        dhn = Vec::add(dhc, dy);
        dcn = dc;
        dh_skip = Vec::zero();
        dc_skip = Vec::zero();
      } else {
        // The step passed the state through: its cotangents go straight to the previous state.
        dhn = Vec::zero();
        dcn = Vec::zero();
        dh_skip = p.zero_output ? dhc : Vec::add(dhc, dy);
        dc_skip = dc;
      }
      const float* zr = p.z + tb * 4 * H + uu;
      const R i = v_sigmoid(Vec::loadn(zr, n));
      const R f = v_sigmoid(Vec::loadn(zr + H, n));
      const R g = v_tanh(Vec::loadn(zr + 2 * H, n));
      const R o = v_sigmoid(Vec::loadn(zr + 3 * H, n));
      const R c_old = Vec::loadn(p.cprev + tb * H + uu, n);
      const R tc = v_tanh(Vec::fmadd(f, c_old, Vec::mul(i, g)));  // c_t, recomputed
      const R dc_tot = Vec::add(dcn, Vec::mul(Vec::mul(dhn, o), Vec::sub(one, Vec::mul(tc, tc))));
      float* dzr = p.dz + tb * 4 * H + uu;
      Vec::storen(dzr, Vec::mul(Vec::mul(Vec::mul(dc_tot, g), i), Vec::sub(one, i)), n);
      Vec::storen(dzr + H, Vec::mul(Vec::mul(Vec::mul(dc_tot, c_old), f), Vec::sub(one, f)), n);
      Vec::storen(dzr + 2 * H, Vec::mul(Vec::mul(dc_tot, i), Vec::sub(one, Vec::mul(g, g))), n);
      Vec::storen(dzr + 3 * H, Vec::mul(Vec::mul(Vec::mul(dhn, tc), o), Vec::sub(one, o)), n);
      Vec::store(p.dcbuf + row * Hp + uu, Vec::add(Vec::mul(dc_tot, f), dc_skip));
      Vec::store(p.skipbuf + row * Hp + uu, dh_skip);
    }
  }
}

template <int MR, int NV>
static void bwd_rows(const BwdProblem& p, int64_t s, int64_t tile, int64_t r0, int64_t r1) {
  int64_t r = r0;
  for (; r + MR <= r1; r += MR) bwd_block<MR, NV>(p, s, tile, r);
  switch (r1 - r) {
    case 0: break;
#define JAXLSTM_TAIL(k) case k: if constexpr (k < MR) bwd_block<k, NV>(p, s, tile, r); break;
    JAXLSTM_TAIL(1) JAXLSTM_TAIL(2) JAXLSTM_TAIL(3) JAXLSTM_TAIL(4) JAXLSTM_TAIL(5)
    JAXLSTM_TAIL(6) JAXLSTM_TAIL(7) JAXLSTM_TAIL(8) JAXLSTM_TAIL(9) JAXLSTM_TAIL(10)
    JAXLSTM_TAIL(11)
#undef JAXLSTM_TAIL
  }
}
