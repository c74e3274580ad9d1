// Fused CPU selective scan (the recurrence of Mamba's S6 layer) with its backward pass.
//
// For every batch row b, channel d and state n (mamba_ssm's selective_scan_ref, without its
// elementwise pre- and post-processing, which the Python wrapper does with vectorised torch ops:
// dt = softplus(delta + delta_bias) before, y + D u and the silu(z) gate after):
//
//     h[t] = exp(dt[t] * A[d, n]) * h[t-1] + dt[t] * B[b, n, t] * u[t]
//     y[t] = sum_n C[b, n, t] * h[t, n]
//
// Layout: u, dt, y are [B, D, L] contiguous; A is [D, N]; B and C are passed transposed and
// contiguous as [B, L, N], so the inner loop over the N states reads one contiguous run.
//
// Parallel over the B * D independent (b, d) rows (at::parallel_for, torch's intra-op threads);
// each row is one sequential pass over L with its N states in registers, so nothing of size
// [B, D, L, N] is ever materialised. The per-state loops vectorise: N is a compile-time constant
// for the usual sizes (4, 8, 16), and exp is a polynomial (vexp) rather than a libm call.
//
// Backward (per row): recompute the forward once, keeping that row's decays and states
// ([L, N] each, at most a few hundred KB, in cache), then one reverse pass over time carrying the
// adjoint of the state. Gradients shared across rows are accumulated without races: dA per row
// ([B, D, N], summed over B by the caller); dB and dC (shared by every channel d of a batch row)
// in one [B, L, N] buffer per task, a fixed split of the rows so the summation order does not
// depend on thread scheduling, summed over tasks by the caller.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

namespace {

// exp for the per-state loops, written so the compiler vectorises those loops (std::exp is a
// scalar libm call that would keep them scalar; the decays exp(dt * A) are most of the work).
// Cephes' expf: x = k ln2 + r with |r| <= ln2 / 2, exp(r) by a degree-7 polynomial, times 2^k;
// relative error ~1e-7 (a float's resolution). Below -87.3 (where 2^k would leave the normal
// range) the result is 0, as the decay of a state it underflows to is.
inline float vexp(float x) {
  const float lo = -87.3f, hi = 88.7f;
  const float xc = std::min(std::max(x, lo), hi);
  // round(x / ln2) with the 1.5 * 2^23 trick (plain adds: vectorises without fast-math)
  const float k = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (xc - k * 0.693359375f) + k * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = p * r * r + r + 1.0f;
  const float scale = std::bit_cast<float>((static_cast<int32_t>(k) + 127) << 23);
  const float y = er * scale;
  return x < lo ? 0.0f : (x > hi ? std::numeric_limits<float>::infinity() : y);
}

// float64 (gradcheck) keeps libm's exp: its speed does not matter
inline double vexp(double x) { return std::exp(x); }

struct Sizes {
  int64_t batch, dim, length, state;
};

// Inputs of one call.
template <typename T>
struct Args {
  const T *u, *dt, *A, *Bt, *Ct;
};

// The number of states: the template constant NS when it is not 0, else the runtime size.
template <int NS>
inline int64_t states(const Sizes& s) {
  return NS > 0 ? NS : s.state;
}

// Forward of row r = b * D + d. y (when not null) gets y[t] at [r, t]; with `Keep` the states
// and decays are kept in hs [(L + 1) N], row t + 1 the state after step t and row 0 the zero
// initial state (left as the caller filled it), and as [L N]. h: scratch of N. `Keep` is a
// template constant so the inference loop carries no stores (and no branch) it does not need.
template <typename T, int NS, bool Keep>
void forward_row(const Sizes& s, const Args<T>& p, int64_t r, T* y, T* hs, T* as, T* h_scratch) {
  const int64_t L = s.length, N = states<NS>(s);
  // a fixed-size local state when N is a compile-time constant: the compiler keeps it in
  // registers across time steps instead of storing and reloading it every step
  T h_local[NS > 0 ? NS : 1];
  T* h = NS > 0 ? h_local : h_scratch;
  const int64_t b = r / s.dim, d = r % s.dim;
  const T* u = p.u + r * L;
  const T* dt = p.dt + r * L;
  const T* A = p.A + d * N;
  const T* B = p.Bt + b * L * N;
  const T* C = p.Ct + b * L * N;
  std::fill(h, h + N, T(0));
  for (int64_t t = 0; t < L; ++t) {
    const T dtv = dt[t];
    const T du = dtv * u[t];
    const T* b_t = B + t * N;
    const T* c_t = C + t * N;
    T* h_t = Keep ? hs + (t + 1) * N : nullptr;
    T* a_t = Keep ? as + t * N : nullptr;
    T acc = T(0);
#pragma omp simd reduction(+ : acc)
    for (int64_t n = 0; n < N; ++n) {
      const T a = vexp(dtv * A[n]);
      const T hn = a * h[n] + du * b_t[n];
      h[n] = hn;
      if constexpr (Keep) {
        a_t[n] = a;
        h_t[n] = hn;
      }
      acc += hn * c_t[n];
    }
    if (y) y[r * L + t] = acc;
  }
}

// Backward of row r: recompute its forward, then one reverse pass. dy: the gradient of y; du,
// ddt: [B, D, L] outputs; dA_rows: [B, D, N] output (this row's part); dB_task, dC_task: this
// task's [B, L, N] accumulators; hs, as, dh, h: scratch (see forward_row; dh, h: N).
template <typename T, int NS>
void backward_row(const Sizes& s, const Args<T>& p, int64_t r, const T* dy, T* du, T* ddt,
                  T* dA_rows, T* dB_task, T* dC_task, T* hs, T* as, T* dh, T* h) {
  forward_row<T, NS, true>(s, p, r, nullptr, hs, as, h);
  const int64_t L = s.length, N = states<NS>(s);
  const int64_t b = r / s.dim, d = r % s.dim;
  const T* u = p.u + r * L;
  const T* dt = p.dt + r * L;
  const T* A = p.A + d * N;
  const T* B = p.Bt + b * L * N;
  const T* C = p.Ct + b * L * N;
  T* dB = dB_task + b * L * N;
  T* dC = dC_task + b * L * N;
  T* dA = dA_rows + r * N;
  std::fill(dh, dh + N, T(0));
  for (int64_t t = L - 1; t >= 0; --t) {
    const T ut = u[t], dtv = dt[t], gy = dy[r * L + t];
    const T dtu = dtv * ut;
    const T* b_t = B + t * N;
    const T* c_t = C + t * N;
    const T* h_t = hs + (t + 1) * N;
    const T* h_prev = hs + t * N;  // row 0: the zero initial state
    const T* a_t = as + t * N;
    T* dB_t = dB + t * N;
    T* dC_t = dC + t * N;
    T gda = T(0), gb = T(0);
#pragma omp simd reduction(+ : gda, gb)
    for (int64_t n = 0; n < N; ++n) {
      // dh[n] arrives as the adjoint of h[t] through h[t+1]; add y[t]'s share
      const T g = dh[n] + gy * c_t[n];
      dC_t[n] += gy * h_t[n];
      // h[t] = a h[t-1] + dt u B with a = exp(dt A): d a = g h[t-1], d(dt A) = d a * a
      const T da_a = g * h_prev[n] * a_t[n];
      gda += da_a * A[n];
      dA[n] += da_a * dtv;
      gb += g * b_t[n];
      dB_t[n] += g * dtu;
      dh[n] = g * a_t[n];
    }
    du[r * L + t] = gb * dtv;
    ddt[r * L + t] = gda + gb * ut;
  }
}

// Calls f(std::integral_constant<int, NS>) with NS = N for the usual state sizes, else 0.
template <typename F>
void with_state_size(int64_t N, F&& f) {
  switch (N) {
    case 16: f(std::integral_constant<int, 16>{}); break;
    case 8: f(std::integral_constant<int, 8>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    default: f(std::integral_constant<int, 0>{}); break;
  }
}

Sizes check_inputs(const at::Tensor& u, const at::Tensor& dt, const at::Tensor& A, const at::Tensor& Bt,
                   const at::Tensor& Ct) {
  TORCH_CHECK(u.device().is_cpu(), "selective_scan_cpu: tensors must be on the CPU");
  TORCH_CHECK(u.dim() == 3, "selective_scan_cpu: u must be [B, D, L]");
  TORCH_CHECK(A.dim() == 2 && A.size(0) == u.size(1), "selective_scan_cpu: A must be [D, N]");
  const Sizes s{u.size(0), u.size(1), u.size(2), A.size(1)};
  for (const auto* t : {&u, &dt, &A, &Bt, &Ct}) {
    TORCH_CHECK(t->scalar_type() == u.scalar_type(), "selective_scan_cpu: every input must have u's dtype");
    TORCH_CHECK(t->is_contiguous(), "selective_scan_cpu: inputs must be contiguous");
  }
  TORCH_CHECK(dt.sizes() == u.sizes(), "selective_scan_cpu: dt must be [B, D, L]");
  TORCH_CHECK(Bt.dim() == 3 && Bt.size(0) == s.batch && Bt.size(1) == s.length && Bt.size(2) == s.state,
              "selective_scan_cpu: B must be passed as [B, L, N]");
  TORCH_CHECK(Ct.sizes() == Bt.sizes(), "selective_scan_cpu: C must be passed as [B, L, N]");
  return s;
}

}  // namespace

// Forward: y [B, D, L].
at::Tensor selective_scan_fwd(const at::Tensor& u, const at::Tensor& dt, const at::Tensor& A,
                              const at::Tensor& Bt, const at::Tensor& Ct) {
  const Sizes s = check_inputs(u, dt, A, Bt, Ct);
  auto y = at::empty_like(u);
  const int64_t rows = s.batch * s.dim;
  if (rows * s.length == 0) return y;
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "selective_scan_fwd", [&] {
    using T = scalar_t;
    const Args<T> p{u.data_ptr<T>(), dt.data_ptr<T>(), A.data_ptr<T>(), Bt.data_ptr<T>(), Ct.data_ptr<T>()};
    T* py = y.data_ptr<T>();
    with_state_size(s.state, [&](auto ns) {
      constexpr int NS = decltype(ns)::value;
      // a row is L * N multiply-adds and exps: one row per task is already plenty of work
      at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
        std::vector<T> h(s.state);
        for (int64_t r = begin; r < end; ++r) forward_row<T, NS, false>(s, p, r, py, nullptr, nullptr, h.data());
      });
    });
  });
  return y;
}

// Backward. Returns (du [B, D, L], ddt [B, D, L], dA_rows [B, D, N], dB_tasks [T, B, L, N],
// dC_tasks [T, B, L, N]); the caller sums dA_rows over B and the *_tasks over T.
std::vector<at::Tensor> selective_scan_bwd(const at::Tensor& u, const at::Tensor& dt, const at::Tensor& A,
                                           const at::Tensor& Bt, const at::Tensor& Ct,
                                           const at::Tensor& dy_in) {
  const Sizes s = check_inputs(u, dt, A, Bt, Ct);
  const at::Tensor dy = dy_in.to(u.scalar_type()).contiguous();
  TORCH_CHECK(dy.sizes() == u.sizes(), "selective_scan_cpu: the gradient of y must be [B, D, L]");
  const int64_t rows = s.batch * s.dim;
  // a fixed number of tasks, each owning a contiguous block of rows and its own dB/dC buffer
  const int64_t tasks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), rows));
  auto du = at::empty_like(u);
  auto ddt = at::empty_like(u);
  auto dA_rows = at::zeros({s.batch, s.dim, s.state}, u.options());
  auto dB_tasks = at::zeros({tasks, s.batch, s.length, s.state}, u.options());
  auto dC_tasks = at::zeros({tasks, s.batch, s.length, s.state}, u.options());
  if (rows * s.length == 0) return {du.zero_(), ddt.zero_(), dA_rows, dB_tasks, dC_tasks};
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "selective_scan_bwd", [&] {
    using T = scalar_t;
    const Args<T> p{u.data_ptr<T>(), dt.data_ptr<T>(), A.data_ptr<T>(), Bt.data_ptr<T>(), Ct.data_ptr<T>()};
    const T* pdy = dy.data_ptr<T>();
    T* pdu = du.data_ptr<T>();
    T* pddt = ddt.data_ptr<T>();
    T* pdA = dA_rows.data_ptr<T>();
    T* pdB = dB_tasks.data_ptr<T>();
    T* pdC = dC_tasks.data_ptr<T>();
    const int64_t L = s.length, N = s.state;
    const int64_t per_task = (rows + tasks - 1) / tasks;
    with_state_size(N, [&](auto ns) {
      constexpr int NS = decltype(ns)::value;
      at::parallel_for(0, tasks, 1, [&](int64_t task_begin, int64_t task_end) {
        // hs row 0 stays zero: the initial state (see forward_row)
        std::vector<T> hs((L + 1) * N, T(0)), as(L * N), dh(N), h(N);
        for (int64_t task = task_begin; task < task_end; ++task) {
          const int64_t r_end = std::min(rows, (task + 1) * per_task);
          for (int64_t r = task * per_task; r < r_end; ++r)
            backward_row<T, NS>(s, p, r, pdy, pdu, pddt, pdA, pdB + task * s.batch * L * N,
                                pdC + task * s.batch * L * N, hs.data(), as.data(), dh.data(), h.data());
        }
      });
    });
  });
  return {du, ddt, dA_rows, dB_tasks, dC_tasks};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Fused CPU selective scan (forward and backward) for use_repro.models.scan_cpu";
  m.def("fwd", &selective_scan_fwd, "selective scan forward: y [B, D, L]", py::arg("u"), py::arg("dt"),
        py::arg("A"), py::arg("B"), py::arg("C"));
  m.def("bwd", &selective_scan_bwd, "selective scan backward (partial sums; see the source)",
        py::arg("u"), py::arg("dt"), py::arg("A"), py::arg("B"), py::arg("C"), py::arg("dy"));
}
