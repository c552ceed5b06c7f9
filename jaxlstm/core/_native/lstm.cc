// XLA FFI handlers for the LSTM forward and backward recurrences on CPU, and the Python module
// `jaxlstm._native._lstm` that hands them to jax as PyCapsules.
//
// Threading: a call runs as a sequence of stages (pack the weights, then one stage per time step),
// each a set of independent items (column panels x row groups) separated by a barrier. The calling
// thread schedules up to n-1 helper tasks on XLA's intra-op pool (the FFI ThreadPool context) and
// then works itself. Items are claimed through atomic per-slot counters: every participant first
// takes the items of its own slot (the same panels every step, so their packed weights stay in its
// cache), then steals the rest. A participant only ever waits at a barrier for items that another
// running participant has claimed, never for a task that may not have started: a helper that
// starts late (or never) just leaves its items to the others. A participant that waits far longer
// than an item takes (its peer was descheduled, e.g. by another process on that core) takes the
// call over for a lease: it works alone, with no barriers to wait at, while the others sleep; when
// the lease ends (checked between stages) the others rejoin. Leases double with every take-over
// (the core stays busy) and halve with every call that ran on several threads without one, so a
// long call loses its threads only while a core is actually taken, and a busy core costs one
// take-over per lease, not one per call.
// All per-call state lives in one reference-counted object, so a helper that starts after the call
// returned finds nothing to claim and exits without touching freed memory.

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "lstm_kernels.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace jaxlstm {
namespace {

// ---------------------------------------------------------------------------------------------
// CPU features
// ---------------------------------------------------------------------------------------------

bool cpu_has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

bool cpu_has_avx512() {
  __builtin_cpu_init();  // libgcc also checks that the OS saves the zmm state (XGETBV)
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512dq");
}

// isa attribute: 1 = AVX2, 2 = AVX-512 (0 is never sent: native.py resolves it at load).
const IsaKernels* kernels_for(int32_t isa) {
  if (isa == 2 && cpu_has_avx512()) return avx512_kernels();
  if (isa == 1 && cpu_has_avx2()) return avx2_kernels();
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Aligned scratch
// ---------------------------------------------------------------------------------------------

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};
using Scratch = std::unique_ptr<float, FreeDeleter>;

Scratch alloc_floats(int64_t n, bool zero) {
  const size_t bytes = ((static_cast<size_t>(std::max<int64_t>(n, 1)) * 4 + 63) / 64) * 64;
  void* p = std::aligned_alloc(64, bytes);
  if (p && zero) std::memset(p, 0, bytes);
  return Scratch(static_cast<float*>(p));
}

// ---------------------------------------------------------------------------------------------
// The team
// ---------------------------------------------------------------------------------------------

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The take-over lease (see the top of this file), shared by all calls: its length, and until when
// new calls start owned by their caller (a take-over's lease outlives its call).
constexpr int64_t kMinLeaseNs = 5000000, kMaxLeaseNs = 320000000;  // 5 ms .. 320 ms
std::atomic<int64_t> lease_ns{kMinLeaseNs};
std::atomic<int64_t> solo_until_ns{0};

// A take-over now: returns the end of its lease and doubles the next one.
int64_t begin_lease() {
  const int64_t lease = lease_ns.load(std::memory_order_relaxed);
  lease_ns.store(std::min(2 * lease, kMaxLeaseNs), std::memory_order_relaxed);
  const int64_t end = now_ns() + lease;
  int64_t prev = solo_until_ns.load(std::memory_order_relaxed);
  while (prev < end && !solo_until_ns.compare_exchange_weak(prev, end, std::memory_order_relaxed)) {
  }
  return end;
}

struct alignas(64) SlotCounter {
  // (stage << 32) | next offset into the slot's item range for that stage.
  std::atomic<int64_t> value{-1};
};

class Team {
 public:
  // n_first items in stage 0, n_rest in every later stage.
  Team(int64_t n_stages, int64_t n_first, int64_t n_rest, int n_slots)
      : n_stages_(n_stages), n_first_(n_first), n_rest_(n_rest), n_slots_(n_slots),
        slots_(new SlotCounter[n_slots]) {}
  virtual ~Team() = default;
  virtual void run_item(int64_t stage, int64_t item) = 0;

  int n_slots() const { return n_slots_; }
  int take_slot() { return next_slot_.fetch_add(1, std::memory_order_relaxed); }

  // Runs stages until the end: returns only after the last stage's barrier (whoever did the work),
  // which is what the calling thread needs before its handler returns.
  void participate(int slot) {
    for (int64_t k = stage_hint_.load(std::memory_order_acquire); k < n_stages_; ++k) {
      const int owner = owner_.load(std::memory_order_acquire);
      if (owner == slot && now_ns() >= lease_end_ns_.load(std::memory_order_relaxed)) {
        owner_.store(-1, std::memory_order_release);  // the lease is over: the others rejoin
      } else if (owner >= 0 && owner != slot) {  // another participant works alone for now
        if (!wait_for_release(slot == 0)) return;  // the call is done
        k = stage_hint_.load(std::memory_order_acquire) - 1;  // rejoin at the current stage
        continue;
      }
      int64_t mine = 0;
      const auto t0 = Clock::now();
      for (int j = 0; j < n_slots_; ++j) {
        const int m = (slot + j) % n_slots_;
        for (int64_t it; (it = claim(m, k)) >= 0;) {
          run_item(k, it);
          ++mine;
        }
      }
      if (mine) done_.fetch_add(mine, std::memory_order_acq_rel);
      wait_active(cumulative(k), mine ? (Clock::now() - t0) / mine : Clock::duration{}, slot);
      int64_t hint = stage_hint_.load(std::memory_order_relaxed);
      while (hint < k + 1 &&
             !stage_hint_.compare_exchange_weak(hint, k + 1, std::memory_order_acq_rel)) {
      }
    }
  }

  bool finished() const { return stage_hint_.load(std::memory_order_relaxed) >= n_stages_; }

  // The caller owns the call until `until_ns` (a core was busy a moment ago); set before any helper
  // is scheduled.
  void start_owned(int64_t until_ns) {
    lease_end_ns_.store(until_ns, std::memory_order_relaxed);
    owner_.store(0, std::memory_order_release);
  }

  // Whether some participant took the call over (its peers were descheduled) at least once.
  bool taken_over() const { return take_overs_.load(std::memory_order_relaxed) > 0; }
  void helper_joined() { joined_.fetch_add(1, std::memory_order_relaxed); }
  bool helpers_joined() const { return joined_.load(std::memory_order_relaxed) > 0; }

 private:
  using Clock = std::chrono::steady_clock;

  bool reached(int64_t target) const { return done_.load(std::memory_order_acquire) >= target; }

  // Waits at a barrier. Only items claimed by running participants are outstanding, so this ends.
  // Spins first (the peer is finishing its last item); after 50 us yields the core; after much
  // longer than an item takes, the peer was descheduled: this participant takes the rest over.
  void wait_active(int64_t target, Clock::duration per_item, int slot) {
    if (reached(target)) return;
    const auto t0 = Clock::now();
    const auto take_over_after = std::max<Clock::duration>(std::chrono::microseconds(300), 8 * per_item);
    while (!reached(target)) {
      for (int i = 0; i < 64; ++i) cpu_relax();
      const auto waited = Clock::now() - t0;
      if (waited < std::chrono::microseconds(50)) continue;
      if (waited > take_over_after && owner_.load(std::memory_order_relaxed) < 0) {
        int expected = -1;
        if (owner_.compare_exchange_strong(expected, slot, std::memory_order_acq_rel)) {
          lease_end_ns_.store(begin_lease(), std::memory_order_relaxed);
          take_overs_.fetch_add(1, std::memory_order_relaxed);
        }
      }
      std::this_thread::yield();
    }
  }

  // A participant while another works alone: sleeps (rather than competing for the core) until the
  // owner's lease ends (true) or the call is done (false). The caller checks every 20 us (its call
  // returns as soon as the work is done); a helper backs off to 1 ms (a lease lasts 5 ms or more,
  // and a helper waking often would take time from the owner where they share a core).
  bool wait_for_release(bool is_caller) {
    const int64_t last = cumulative(n_stages_ - 1);
    int64_t sleep_us = 20;
    for (;;) {
      for (int i = 0; i < 256; ++i) {
        if (reached(last)) return false;
        if (owner_.load(std::memory_order_acquire) < 0) return true;
        cpu_relax();
      }
      std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
      if (!is_caller) sleep_us = std::min<int64_t>(2 * sleep_us, 1000);
    }
  }

  int64_t items(int64_t k) const { return k == 0 ? n_first_ : n_rest_; }
  int64_t cumulative(int64_t k) const { return n_first_ + k * n_rest_; }

  // Claims the next item of slot m's range in stage k, or -1 if none is left.
  int64_t claim(int m, int64_t k) {
    const int64_t n = items(k);
    const int64_t lo = n * m / n_slots_, hi = n * (m + 1) / n_slots_;
    if (lo >= hi) return -1;
    std::atomic<int64_t>& c = slots_[m].value;
    int64_t v = c.load(std::memory_order_acquire);
    for (;;) {
      const int64_t st = v < 0 ? -1 : (v >> 32);
      if (st > k) return -1;
      if (st < k) {  // the first participant to reach stage k in this slot opens it
        if (c.compare_exchange_weak(v, (k << 32) | 1, std::memory_order_acq_rel)) return lo;
        continue;
      }
      const int64_t off = v & 0xffffffffLL;
      if (lo + off >= hi) return -1;
      if (c.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel)) return lo + off;
    }
  }

  const int64_t n_stages_, n_first_, n_rest_;
  const int n_slots_;
  std::unique_ptr<SlotCounter[]> slots_;
  alignas(64) std::atomic<int64_t> done_{0};
  alignas(64) std::atomic<int64_t> stage_hint_{0};
  alignas(64) std::atomic<int> owner_{-1};
  std::atomic<int64_t> lease_end_ns_{0};
  std::atomic<int> take_overs_{0}, joined_{0};
  std::atomic<int> next_slot_{1};
};

// Diagnostics (jaxlstm.native._stats()): how calls ran, to explain timings on a loaded machine.
struct Stats {
  std::atomic<int64_t> calls{0}, threads{0}, helpers_joined{0}, taken_over{0},
      solo_after_contention{0};
} stats;

// Runs the team on the caller plus up to n_slots-1 pool tasks; returns when every stage is done.
// Within a lease that an earlier call's take-over started, the caller owns the call from the start
// (the helpers join when the lease ends, if the call is still running then).
void run_team(const std::shared_ptr<Team>& team, ffi::ThreadPool& pool) {
  const int64_t solo_until = solo_until_ns.load(std::memory_order_relaxed);
  const bool owned = team->n_slots() > 1 && now_ns() < solo_until;
  if (owned) {
    team->start_owned(solo_until);
    stats.solo_after_contention.fetch_add(1, std::memory_order_relaxed);
  }
  for (int i = 1; i < team->n_slots(); ++i) {
    pool.Schedule([team]() {
      const int slot = team->take_slot();
      if (slot < team->n_slots() && !team->finished()) {
        stats.helpers_joined.fetch_add(1, std::memory_order_relaxed);
        team->helper_joined();
        team->participate(slot);
      }
    });
  }
  team->participate(0);
  stats.calls.fetch_add(1, std::memory_order_relaxed);
  stats.threads.fetch_add(team->n_slots(), std::memory_order_relaxed);
  if (team->taken_over()) {
    stats.taken_over.fetch_add(1, std::memory_order_relaxed);
  } else if (!owned && team->helpers_joined()) {  // several threads, no take-over: halve the lease
    const int64_t lease = lease_ns.load(std::memory_order_relaxed);
    lease_ns.store(std::max(lease / 2, kMinLeaseNs), std::memory_order_relaxed);
  }
}

// How many threads: the pool's size (caller included), capped by items per step and by the work
// per step (a thread should get at least ~256 kFLOP, a few microseconds, of each step: a barrier
// costs about a microsecond with many threads).
int team_size(ffi::ThreadPool& pool, int32_t requested, int64_t items, double flops_per_step) {
  int64_t n = requested > 0 ? requested : pool.num_threads();
  n = std::max<int64_t>(1, std::min<int64_t>({n, items, 256}));
  const int64_t by_work = static_cast<int64_t>(flops_per_step / 262144.0);
  return static_cast<int>(std::max<int64_t>(1, std::min(n, by_work)));
}

// Row groups: enough items per step for stealing to balance (about 4 per thread), never a group
// smaller than one micro-kernel block.
int64_t row_groups(int64_t B, int mr, int64_t cols, int threads) {
  const int64_t blocks = (B + mr - 1) / mr;
  const int64_t want = (4 * threads + cols - 1) / cols;
  return std::max<int64_t>(1, std::min(blocks, want));
}

// Rows [r0, r1) of group g: whole micro-kernel blocks split as evenly as possible.
void group_rows(int64_t B, int mr, int64_t G, int64_t g, int64_t* r0, int64_t* r1) {
  const int64_t blocks = (B + mr - 1) / mr;
  *r0 = std::min(B, (blocks * g / G) * mr);
  *r1 = std::min(B, (blocks * (g + 1) / G) * mr);
}

// ---------------------------------------------------------------------------------------------
// Forward
// ---------------------------------------------------------------------------------------------

class FwdTeam final : public Team {
 public:
  FwdTeam(const IsaKernels* k, const FwdProblem& p, int n_slots)
      : Team(p.T + 1, p.P, p.P * p.G, n_slots), k_(k), p_(p) {}
  Scratch Wp, Up, bp, hbuf, cbuf;
  void run_item(int64_t stage, int64_t item) override {
    if (stage == 0) return k_->fwd_pack(p_, item);
    int64_t r0, r1;
    group_rows(p_.B, k_->fwd_mr, p_.G, item % p_.G, &r0, &r1);
    if (r0 < r1) k_->fwd_step(p_, stage - 1, item / p_.G, r0, r1);
  }
  const IsaKernels* const k_;
  FwdProblem p_;
};

// One step with at most kStepMaxRows rows (jaxlstm.step; StepProblem in lstm_kernels.h): stage 0
// streams the weight rows into per-chunk partial sums, stage 1 sums them and runs the gates. With
// more rows the column blocks get too narrow (B x CW floats in L1) and XLA's GEMM wins (measured;
// native.preferred sends those steps to XLA).
constexpr int64_t kStepMaxRows = 16;

class StepTeam final : public Team {
 public:
  StepTeam(const IsaKernels* k, const StepProblem& p, int n_slots)
      : Team(2, p.R * p.C, p.f.P * p.f.G, n_slots), k_(k), p_(p) {}
  Scratch zpart;
  void run_item(int64_t stage, int64_t item) override {
    if (stage == 0) return k_->step_partial(p_, item / p_.C, item % p_.C);
    int64_t r0, r1;
    group_rows(p_.f.B, k_->fwd_mr, p_.f.G, item % p_.f.G, &r0, &r1);
    if (r0 < r1) k_->step_finish(p_, item / p_.f.G, r0, r1);
  }
  const IsaKernels* const k_;
  StepProblem p_;
};

template <class Buf>
int64_t cnt(const Buf& b) {
  return static_cast<int64_t>(b.element_count());
}

ffi::Error check(bool ok, const std::string& what) {
  return ok ? ffi::Error::Success() : ffi::Error::InvalidArgument("jaxlstm native: " + what);
}

#define JAXLSTM_CHECK(cond, what)                 \
  do {                                            \
    ffi::Error e_ = check((cond), (what));        \
    if (!e_.success()) return e_;                 \
  } while (0)

// Per-batch operands arrive as [B, 1, 1, ...], row-major (the batch leading, for XLA's batch
// partitioner; see native.py): sequences [B][T][K], masks [B][T], states [B][H].
ffi::Error ForwardImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> xs, ffi::Buffer<ffi::F32> h0,
                       ffi::Buffer<ffi::F32> c0, ffi::Buffer<ffi::PRED> keep,
                       ffi::Buffer<ffi::PRED> valid, ffi::Buffer<ffi::F32> kernel,
                       ffi::Buffer<ffi::F32> recurrent, ffi::Buffer<ffi::F32> bias,
                       ffi::ResultBuffer<ffi::F32> ys,
                       ffi::ResultBuffer<ffi::F32> hT, ffi::ResultBuffer<ffi::F32> cT,
                       ffi::ResultBuffer<ffi::F32> z, ffi::ResultBuffer<ffi::F32> hprev,
                       ffi::ResultBuffer<ffi::F32> cprev, bool zero_output, bool save,
                       bool has_bias, bool has_keep, bool has_valid, int32_t isa,
                       int32_t threads) {
  const IsaKernels* k = kernels_for(isa);
  JAXLSTM_CHECK(k != nullptr, "the CPU lacks the requested instruction set");
  const auto xd = xs.dimensions();
  JAXLSTM_CHECK(xd.size() == 5 && xd[1] == 1 && xd[2] == 1, "xs must be [B, 1, 1, T, I]");
  const int64_t B = xd[0], T = xd[3], I = xd[4];
  const auto ud = recurrent.dimensions();
  JAXLSTM_CHECK(ud.size() == 2 && ud[1] == 4 * ud[0], "recurrent_kernel must be [H, 4H]");
  const int64_t H = ud[0];
  const auto kd = kernel.dimensions();
  JAXLSTM_CHECK(kd.size() == 2 && kd[0] == I && kd[1] == 4 * H, "kernel must be [I, 4H]");
  JAXLSTM_CHECK(!has_bias || cnt(bias) == 4 * H, "bias must be [4H]");
  JAXLSTM_CHECK(cnt(h0) == B * H && cnt(c0) == B * H,
                "h0 and c0 must be [B, 1, 1, H]");
  JAXLSTM_CHECK(!has_keep || cnt(keep) == T * B, "keep must be [B, 1, 1, T]");
  JAXLSTM_CHECK(!has_valid || cnt(valid) == T * B, "valid must be [B, 1, 1, T]");
  JAXLSTM_CHECK(!save || (cnt(*z) == T * B * 4 * H &&
                          cnt(*hprev) == T * B * H &&
                          cnt(*cprev) == T * B * H),
                "residual outputs have the wrong size");
  if (T == 0 || B == 0 || H == 0) {
    if (B * H > 0) {
      std::memcpy(hT->typed_data(), h0.typed_data(), B * H * sizeof(float));
      std::memcpy(cT->typed_data(), c0.typed_data(), B * H * sizeof(float));
    }
    return ffi::Error::Success();
  }
  const int V = k->V;
  FwdProblem p{};
  p.T = T; p.B = B; p.I = I; p.H = H;
  p.st = 1; p.sb = T;  // batch-major
  p.P = (H + V - 1) / V;
  p.Hp = p.P * V;
  p.W = kernel.typed_data(); p.U = recurrent.typed_data();
  p.bias = has_bias ? bias.typed_data() : nullptr;
  p.x = xs.typed_data(); p.h0 = h0.typed_data(); p.c0 = c0.typed_data();
  p.keep = has_keep ? keep.typed_data() : nullptr;
  p.valid = has_valid ? valid.typed_data() : nullptr;
  p.zero_output = zero_output;
  p.ys = ys->typed_data(); p.hT = hT->typed_data(); p.cT = cT->typed_data();
  p.z = save ? z->typed_data() : nullptr;
  p.hprev = save ? hprev->typed_data() : nullptr;
  p.cprev = save ? cprev->typed_data() : nullptr;

  const double flops = 2.0 * B * (I + H) * 4.0 * H;
  if (T == 1 && B <= kStepMaxRows) {
    StepProblem sp{};
    sp.f = p;
    // A block's accumulators (B x CW floats) stay in L1: at most 4096 floats, CW a multiple of 64.
    sp.CW = std::min<int64_t>(4 * H, std::max<int64_t>(64, (4096 / B) / 64 * 64));
    sp.C = (4 * H + sp.CW - 1) / sp.CW;
    // Chunks of at least 16 weight rows, about 4 items per thread for stealing to balance.
    const int n = team_size(pool, threads, sp.C * ((I + H + 15) / 16), flops);
    sp.R = std::max<int64_t>(1, std::min((I + H + 15) / 16, (4 * n + sp.C - 1) / sp.C));
    sp.f.G = row_groups(B, k->fwd_mr, p.P, n);
    auto team = std::make_shared<StepTeam>(k, sp, n);
    team->zpart = alloc_floats(sp.R * B * 4 * H, false);
    JAXLSTM_CHECK(team->zpart != nullptr, "out of memory for scratch");
    team->p_.zpart = team->zpart.get();
    run_team(team, pool);
    return ffi::Error::Success();
  }
  const int n = team_size(pool, threads, p.P * ((B + k->fwd_mr - 1) / k->fwd_mr), flops);
  p.G = row_groups(B, k->fwd_mr, p.P, n);
  auto team = std::make_shared<FwdTeam>(k, p, n);
  team->Wp = alloc_floats(p.P * I * 4 * V, false);
  team->Up = alloc_floats(p.P * H * 4 * V, false);
  team->bp = alloc_floats(p.P * 4 * V, false);
  team->hbuf = alloc_floats(2 * B * p.Hp, true);  // padded lanes stay zero
  team->cbuf = alloc_floats(B * p.Hp, true);
  JAXLSTM_CHECK(team->Wp && team->Up && team->bp && team->hbuf && team->cbuf,
                "out of memory for scratch");
  team->p_.Wp = team->Wp.get(); team->p_.Up = team->Up.get(); team->p_.bp = team->bp.get();
  team->p_.hbuf = team->hbuf.get(); team->p_.cbuf = team->cbuf.get();
  run_team(team, pool);
  return ffi::Error::Success();
}

// ---------------------------------------------------------------------------------------------
// Backward
// ---------------------------------------------------------------------------------------------

class BwdTeam final : public Team {
 public:
  BwdTeam(const IsaKernels* k, const BwdProblem& p, int n_slots)
      : Team(p.T + 2, p.NT, p.NT * p.G, n_slots), k_(k), p_(p) {}
  Scratch UTp, dcbuf, skipbuf;
  void run_item(int64_t stage, int64_t item) override {
    if (stage == 0) return k_->bwd_pack(p_, item);
    int64_t r0, r1;
    group_rows(p_.B, k_->bwd_mr, p_.G, item % p_.G, &r0, &r1);
    if (r0 < r1) k_->bwd_stage(p_, p_.T - (stage - 1), item / p_.G, r0, r1);
  }
  const IsaKernels* const k_;
  BwdProblem p_;
};

ffi::Error BackwardImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> z,
                        ffi::Buffer<ffi::F32> cprev, ffi::Buffer<ffi::F32> dys,
                        ffi::Buffer<ffi::F32> dhT, ffi::Buffer<ffi::F32> dcT,
                        ffi::Buffer<ffi::PRED> keep, ffi::Buffer<ffi::PRED> valid,
                        ffi::Buffer<ffi::F32> recurrent, ffi::ResultBuffer<ffi::F32> dz,
                        ffi::ResultBuffer<ffi::F32> dh0, ffi::ResultBuffer<ffi::F32> dc0,
                        bool zero_output, bool has_keep, bool has_valid, int32_t isa,
                        int32_t threads) {
  const IsaKernels* k = kernels_for(isa);
  JAXLSTM_CHECK(k != nullptr, "the CPU lacks the requested instruction set");
  const auto zd = z.dimensions();
  JAXLSTM_CHECK(zd.size() == 5 && zd[1] == 1 && zd[2] == 1, "z must be [B, 1, 1, T, 4H]");
  const auto ud = recurrent.dimensions();
  JAXLSTM_CHECK(ud.size() == 2 && ud[1] == 4 * ud[0], "recurrent_kernel must be [H, 4H]");
  const int64_t B = zd[0], T = zd[3], H = ud[0];
  JAXLSTM_CHECK(zd[4] == 4 * H, "z must be [B, 1, 1, T, 4H]");
  JAXLSTM_CHECK(cnt(cprev) == T * B * H && cnt(dys) == T * B * H,
                "c_prev and d_ys must be [B, 1, 1, T, H]");
  JAXLSTM_CHECK(cnt(dhT) == B * H && cnt(dcT) == B * H,
                "d_hT and d_cT must be [B, 1, 1, H]");
  JAXLSTM_CHECK(!has_keep || cnt(keep) == T * B, "keep must be [B, 1, 1, T]");
  JAXLSTM_CHECK(!has_valid || cnt(valid) == T * B, "valid must be [B, 1, 1, T]");
  if (T == 0 || B == 0 || H == 0) {
    if (B * H > 0) {
      std::memcpy(dh0->typed_data(), dhT.typed_data(), B * H * sizeof(float));
      std::memcpy(dc0->typed_data(), dcT.typed_data(), B * H * sizeof(float));
    }
    return ffi::Error::Success();
  }
  const int V = k->V;
  BwdProblem p{};
  p.T = T; p.B = B; p.H = H;
  p.st = 1; p.sb = T;  // batch-major
  p.Wt = static_cast<int64_t>(k->bwd_nv) * V;
  p.NT = (H + p.Wt - 1) / p.Wt;
  p.Hp = p.NT * p.Wt;
  p.U = recurrent.typed_data();
  p.z = z.typed_data(); p.cprev = cprev.typed_data(); p.dys = dys.typed_data();
  p.dhT = dhT.typed_data(); p.dcT = dcT.typed_data();
  p.keep = has_keep ? keep.typed_data() : nullptr;
  p.valid = has_valid ? valid.typed_data() : nullptr;
  p.zero_output = zero_output;
  p.dz = dz->typed_data(); p.dh0 = dh0->typed_data(); p.dc0 = dc0->typed_data();

  const double flops = 2.0 * B * 4.0 * H * H;
  const int n = team_size(pool, threads, p.NT * ((B + k->bwd_mr - 1) / k->bwd_mr), flops);
  p.G = row_groups(B, k->bwd_mr, p.NT, n);
  auto team = std::make_shared<BwdTeam>(k, p, n);
  team->UTp = alloc_floats(p.NT * 4 * H * p.Wt, false);
  team->dcbuf = alloc_floats(B * p.Hp, true);
  team->skipbuf = alloc_floats(B * p.Hp, true);
  JAXLSTM_CHECK(team->UTp && team->dcbuf && team->skipbuf, "out of memory for scratch");
  team->p_.UTp = team->UTp.get();
  team->p_.dcbuf = team->dcbuf.get();
  team->p_.skipbuf = team->skipbuf.get();
  run_team(team, pool);
  return ffi::Error::Success();
}

}  // namespace
}  // namespace jaxlstm

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxlstmForward, jaxlstm::ForwardImpl,
                              xla::ffi::Ffi::Bind()
                                  .Ctx<xla::ffi::ThreadPool>()
                                  .Arg<xla::ffi::Buffer<xla::ffi::F32>>()   // xs
                                  .Arg<xla::ffi::Buffer<xla::ffi::F32>>()   // h0
                                  .Arg<xla::ffi::Buffer<xla::ffi::F32>>()   // c0
                                  .Arg<xla::ffi::Buffer<xla::ffi::PRED>>()  // keep
                                  .Arg<xla::ffi::Buffer<xla::ffi::PRED>>()  // valid
                                  .Arg<xla::ffi::Buffer<xla::ffi::F32>>()   // kernel
                                  .Arg<xla::ffi::Buffer<xla::ffi::F32>>()   // recurrent_kernel
                                  .Arg<xla::ffi::Buffer<xla::ffi::F32>>()   // bias
                                  .Ret<xla::ffi::Buffer<xla::ffi::F32>>()   // ys
                                  .Ret<xla::ffi::Buffer<xla::ffi::F32>>()   // h_T
                                  .Ret<xla::ffi::Buffer<xla::ffi::F32>>()   // c_T
                                  .Ret<xla::ffi::Buffer<xla::ffi::F32>>()   // z
                                  .Ret<xla::ffi::Buffer<xla::ffi::F32>>()   // h_prev
                                  .Ret<xla::ffi::Buffer<xla::ffi::F32>>()   // c_prev
                                  .Attr<bool>("zero_output")
                                  .Attr<bool>("save")
                                  .Attr<bool>("has_bias")
                                  .Attr<bool>("has_keep")
                                  .Attr<bool>("has_valid")
                                  .Attr<int32_t>("isa")
                                  .Attr<int32_t>("threads"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxlstmBackward, jaxlstm::BackwardImpl,
                              xla::ffi::Ffi::Bind()
                                  .Ctx<xla::ffi::ThreadPool>()
                                  .Arg<xla::ffi::Buffer<xla::ffi::F32>>()   // z
                                  .Arg<xla::ffi::Buffer<xla::ffi::F32>>()   // c_prev
                                  .Arg<xla::ffi::Buffer<xla::ffi::F32>>()   // d_ys
                                  .Arg<xla::ffi::Buffer<xla::ffi::F32>>()   // d_hT
                                  .Arg<xla::ffi::Buffer<xla::ffi::F32>>()   // d_cT
                                  .Arg<xla::ffi::Buffer<xla::ffi::PRED>>()  // keep
                                  .Arg<xla::ffi::Buffer<xla::ffi::PRED>>()  // valid
                                  .Arg<xla::ffi::Buffer<xla::ffi::F32>>()   // recurrent_kernel
                                  .Ret<xla::ffi::Buffer<xla::ffi::F32>>()   // d_z
                                  .Ret<xla::ffi::Buffer<xla::ffi::F32>>()   // d_h0
                                  .Ret<xla::ffi::Buffer<xla::ffi::F32>>()   // d_c0
                                  .Attr<bool>("zero_output")
                                  .Attr<bool>("has_keep")
                                  .Attr<bool>("has_valid")
                                  .Attr<int32_t>("isa")
                                  .Attr<int32_t>("threads"));

// ---------------------------------------------------------------------------------------------
// Python module
// ---------------------------------------------------------------------------------------------

static PyObject* cpu_features(PyObject*, PyObject*) {
  return Py_BuildValue("{s:O,s:O}", "avx2_fma", jaxlstm::cpu_has_avx2() ? Py_True : Py_False,
                       "avx512", jaxlstm::cpu_has_avx512() ? Py_True : Py_False);
}

static PyObject* get_stats(PyObject*, PyObject*) {
  auto& s = jaxlstm::stats;
  return Py_BuildValue("{s:L,s:L,s:L,s:L,s:L}", "calls", (long long)s.calls.load(), "threads",
                       (long long)s.threads.load(), "helpers_joined",
                       (long long)s.helpers_joined.load(), "taken_over",
                       (long long)s.taken_over.load(), "solo_after_contention",
                       (long long)s.solo_after_contention.load());
}

static PyMethodDef methods[] = {
    {"stats", get_stats, METH_NOARGS,
     "Counters since load: calls, threads (summed team sizes), helpers_joined (helper tasks that "
     "ran while their call was live), taken_over (calls in which one thread took the others' "
     "work over for a lease), solo_after_contention (calls started by their caller alone, within "
     "an earlier take-over's lease)."},
    {"cpu_features", cpu_features, METH_NOARGS,
     "{'avx2_fma': bool, 'avx512': bool}: the instruction sets this CPU and OS support."},
    {nullptr, nullptr, 0, nullptr}};

static PyModuleDef module = {PyModuleDef_HEAD_INIT, "_lstm",
                             "XLA FFI handlers of jaxlstm's native CPU LSTM recurrences.", -1,
                             methods};

PyMODINIT_FUNC PyInit__lstm() {
  PyObject* m = PyModule_Create(&module);
  if (!m) return nullptr;
  PyObject* fwd = PyCapsule_New(reinterpret_cast<void*>(&JaxlstmForward), nullptr, nullptr);
  PyObject* bwd = PyCapsule_New(reinterpret_cast<void*>(&JaxlstmBackward), nullptr, nullptr);
#ifndef JAXLSTM_BUILT_JAXLIB
#define JAXLSTM_BUILT_JAXLIB "unknown"
#endif
  // The handlers speak the FFI version of the jaxlib whose headers built them; native.py refuses a
  // different jaxlib at run time (its registration would fail on an API version mismatch).
  if (PyModule_AddStringConstant(m, "built_with_jaxlib", JAXLSTM_BUILT_JAXLIB) < 0) {
    Py_DECREF(m);
    return nullptr;
  }
  // native.preferred reads it: at T = 1 the packed kernel's pack pass loses to XLA's GEMM.
  if (PyModule_AddIntConstant(m, "step_max_rows", jaxlstm::kStepMaxRows) < 0) {
    Py_DECREF(m);
    return nullptr;
  }
  if (!fwd || !bwd || PyModule_AddObject(m, "forward", fwd) < 0 ||
      PyModule_AddObject(m, "backward", bwd) < 0) {
    Py_XDECREF(fwd);
    Py_XDECREF(bwd);
    Py_DECREF(m);
    return nullptr;
  }
  return m;
}
