// Interface between the generic FFI/threading code (lstm.cc) and the per-ISA kernels
// (kernels_avx2.cc, kernels_avx512.cc). Plain structs of pointers: the kernels never allocate.
#pragma once

#include <cstdint>

namespace jaxlstm {

// Forward recurrence. User buffers are float32 (time-major or batch-major, by st/sb; states
// [B, H]); bools are XLA PRED (1 byte).
struct FwdProblem {
  int64_t T, B, I, H;
  int64_t st, sb;  // row (t, b) of a [T, B]-indexed array is row t*st + b*sb: (B, 1) time-major,
                   // (1, T) batch-major
  int64_t P;   // column panels: panel p holds hidden units [p*V, p*V + V) of all four gates
  int64_t Hp;  // P * V: the padded width of the internal state buffers
  int64_t G;   // row groups per step (items of a step = P * G)
  const float *W, *U, *bias;     // [I, 4H], [H, 4H], [4H] or null
  const float *x, *h0, *c0;      // [T, B, I], [B, H], [B, H]
  const bool *keep, *valid;      // [T, B] or null
  bool zero_output;
  float *ys, *hT, *cT;           // [T, B, H], [B, H], [B, H]
  float *z, *hprev, *cprev;      // residuals [T, B, 4H], [T, B, H], [T, B, H], or null
  float *Wp, *Up, *bp;           // packed: [P][I][4V], [P][H][4V], [P][4V]
  float *hbuf, *cbuf;            // [2][B][Hp], [B][Hp]
};

// One step (T = 1, jaxlstm.step) with few rows: z = [x | h0] [W; U] + bias read in place, the weights
// streamed row by row (a column panel of row-major weights strides a page per row, which the
// hardware prefetchers do not follow; packing them costs that pass too). Stage 1 accumulates row
// chunk r of the K = I + H weight rows into zpart[r]; stage 2 sums the chunks and runs the gates
// (fwd_step's epilogue) per column panel. Uses FwdProblem's T == 1, batch-major fields.
struct StepProblem {
  FwdProblem f;
  int64_t R;   // row chunks (stage 1 items = R * C)
  int64_t C;   // column blocks of CW columns of the 4H
  int64_t CW;  // a multiple of every ISA's V
  float* zpart;  // [R][B][4H]
};

// Backward recurrence (the reverse scan of fast._backward).
struct BwdProblem {
  int64_t T, B, H;
  int64_t st, sb;  // as in FwdProblem
  int64_t NT;  // unit tiles of Wt units (Wt = NVB * V)
  int64_t Wt, Hp;  // Hp = NT * Wt
  int64_t G;
  const float *U;                           // [H, 4H]
  const float *z, *cprev, *dys, *dhT, *dcT;  // [T,B,4H], [T,B,H], [T,B,H], [B,H], [B,H]
  const bool *keep, *valid;
  bool zero_output;
  float *dz, *dh0, *dc0;                    // [T, B, 4H], [B, H], [B, H]
  float *UTp;                               // packed U^T: [NT][4H][Wt]
  float *dcbuf, *skipbuf;                   // [B][Hp] each
};

struct IsaKernels {
  const char* name;
  int V;       // float lanes per vector
  int fwd_mr;  // rows per forward micro-kernel block
  int bwd_mr;  // rows per backward micro-kernel block
  int bwd_nv;  // vectors per backward tile (Wt = bwd_nv * V)
  void (*fwd_pack)(const FwdProblem&, int64_t panel);
  // One step t for one panel and rows [r0, r1) (r0 a multiple of fwd_mr).
  void (*fwd_step)(const FwdProblem&, int64_t t, int64_t panel, int64_t r0, int64_t r1);
  // jaxlstm.step: stage 1 item (row chunk r, column block c); stage 2 panel pan, rows [r0, r1).
  void (*step_partial)(const StepProblem&, int64_t r, int64_t c);
  void (*step_finish)(const StepProblem&, int64_t panel, int64_t r0, int64_t r1);
  void (*bwd_pack)(const BwdProblem&, int64_t tile);
  // Stage s in T..0 for one tile and rows [r0, r1): finish dh_{s} = dz_s U^T (s < T), then the
  // elementwise part of step s-1 (s > 0) or write dh0/dc0 (s == 0).
  void (*bwd_stage)(const BwdProblem&, int64_t s, int64_t tile, int64_t r0, int64_t r1);
};

const IsaKernels* avx2_kernels();
const IsaKernels* avx512_kernels();

}  // namespace jaxlstm
