// Inference-only kernels of a Mamba layer on the CPU (use_repro.models.mamba_infer): the causal
// depthwise convolution + SiLU, and the selective scan fused with everything around it that is
// per token and channel (the dt projection, delta bias, softplus, D u, the SiLU gate).
//
// Why a second kernel besides selective_scan_cpu.cpp: that one is shaped for training (its
// backward pass needs the elementwise steps as separate autograd ops, and it reads [B, D, L]
// rows so one task owns one (sequence, channel) recurrence with the states in a vector). Here
// no gradient is needed, so
// - every tensor stays in the [B, L, D] layout the linear layers produce and consume: none of the
//   transposes and copies around the training scan (which cost as much as the scan itself);
// - a task owns W = 16 channels of one sequence, and the vector runs across channels, so the N
//   states of those channels are N vector registers and <C, h> is N fused multiply-adds with no
//   horizontal reduction;
// - `reverse` runs the conv and the scan from the last token to the first, which is what the
//   backward branch of a bidirectional Mamba computes on a flipped sequence, without the flips.
// Numerics: float32, exp/log/softplus/silu by Cephes-style polynomials (relative error ~1e-7),
// sums in a different order than torch's ops: outputs agree with the training path to ~1e-6
// relative, not bit for bit (tests/models/test_mamba_infer.py).
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace {

constexpr int W = 16;  // channels per vector
constexpr int64_t TILE = 32;  // tokens whose per-token terms the scan makes ahead of the recurrence
typedef float vf __attribute__((vector_size(W * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(W * sizeof(int32_t))));

inline vf splat(float x) { return vf{} + x; }

inline vf load(const float* p, int n) {
  vf v{};
  if (n == W) std::memcpy(&v, p, sizeof(vf));
  else std::memcpy(&v, p, sizeof(float) * n);
  return v;
}

inline void store(float* p, vf v, int n) {
  if (n == W) std::memcpy(p, &v, sizeof(vf));
  else std::memcpy(p, &v, sizeof(float) * n);
}

inline vf vmin(vf a, vf b) { return a < b ? a : b; }
inline vf vmax(vf a, vf b) { return a > b ? a : b; }

// exp(r) for |r| <= ln2 / 2 (the reduced argument): Cephes' expf polynomial, relative error ~1e-7.
inline vf exp_reduced(vf r) {
  vf p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  return p * r * r + r + 1.0f;
}

#if defined(__AVX512F__)
// exp with AVX-512: k = round(x / ln2), r = x - k ln2 (in two parts, exact), exp(r) by Cephes'
// polynomial (exp_reduced), times 2^k by vscalefps, which also takes the result smoothly to 0 for
// very negative x (no clamping or select). ~12 instructions per 16 lanes, half the portable one.
inline vf vexp(vf x) {
  const __m512 k = _mm512_roundscale_ps(x * 1.44269504088896341f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const vf kv = k;
  const vf r = (x - kv * 0.693359375f) + kv * 2.12194440e-4f;
  const vf er = exp_reduced(r);
  // above 88.7 scalef gives inf, as exp does; below about -104 it gives 0
  return _mm512_scalef_ps(er, k);
}
#else
// exp: Cephes' expf polynomial (the same as selective_scan_cpu.cpp's vexp), on W lanes.
inline vf vexp(vf x) {
  const vf lo = splat(-87.3f), hi = splat(88.7f);
  const vf xc = vmin(vmax(x, lo), hi);
  const vf k = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const vf r = (xc - k * 0.693359375f) + k * 2.12194440e-4f;
  const vf er = exp_reduced(r);
  const vi ki = __builtin_convertvector(k, vi);
  vf scale;
  const vi bits = (ki + 127) << 23;
  std::memcpy(&scale, &bits, sizeof(vf));
  vf y = er * scale;
  y = x < lo ? splat(0.0f) : y;
  return y;
}
#endif

// 1 / x: with AVX-512 an approximate reciprocal (relative error 2^-14) refined by one Newton step
// (~1e-7, a float's resolution), which pipelines where a division does not.
#if defined(__AVX512F__)
inline vf vrcp(vf x) {
  const vf r = _mm512_rcp14_ps(x);
  return r * (2.0f - x * r);
}
#else
inline vf vrcp(vf x) { return 1.0f / x; }
#endif

// log(u) for u in [1, 2] (Cephes' logf: u = m 2^e, m in [sqrt(1/2), sqrt(2)), polynomial in m - 1).
inline vf vlog_1_2(vf u) {
  // u in [1, 2]: e = 0 for u < sqrt(2), else e = 1 and m = u / 2
  const vf big = u > 1.41421356237f ? splat(1.0f) : splat(0.0f);
  const vf m = u * (1.0f - 0.5f * big);
  const vf x = m - 1.0f;
  const vf z = x * x;
  vf y = splat(7.0376836292e-2f);
  y = y * x - 1.1514610310e-1f;
  y = y * x + 1.1676998740e-1f;
  y = y * x - 1.2420140846e-1f;
  y = y * x + 1.4249322787e-1f;
  y = y * x - 1.6668057665e-1f;
  y = y * x + 2.0000714765e-1f;
  y = y * x - 2.4999993993e-1f;
  y = y * x + 3.3333331174e-1f;
  y = y * x * z;
  y = y - 0.5f * z;
  return x + y + big * 0.693147180559945f;
}

// softplus(x) = log(1 + exp(x)) (x for x > 20, as torch's softplus with threshold 20), computed
// as max(x, 0) + log1p(exp(-|x|)); log1p(e) with Kahan's correction log(u) e / (u - 1), u = 1 + e,
// so small e keep full relative precision.
inline vf vsoftplus(vf x) {
  const vf ax = x < 0.0f ? -x : x;
  const vf e = vexp(-ax);
  const vf u = 1.0f + e;
  const vf den = u - 1.0f;
  const vf l1p = den == 0.0f ? e : vlog_1_2(u) * e * vrcp(den == 0.0f ? splat(1.0f) : den);
  const vf sp = vmax(x, splat(0.0f)) + l1p;
  return x > 20.0f ? x : sp;
}

inline vf vsilu(vf x) { return x * vrcp(1.0f + vexp(-x)); }

void check_bld(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat, name, ": a float32 CPU tensor");
  TORCH_CHECK(t.dim() == 3 && t.stride(2) == 1, name, ": [B, L, D] with unit stride along D");
}

}  // namespace

// silu(causal depthwise conv(x)): x [B, L, D] (rows may be strided), w [D, K], bias [D] or
// empty -> [B, L, D] contiguous. out[b, t, d] = silu(bias[d] + sum_k w[d, k] x[b, t - K + 1 + k, d]);
// with `reverse`, the same on the time-reversed sequence, written back in forward order:
// out[b, t, d] = silu(bias[d] + sum_k w[d, k] x[b, t + K - 1 - k, d]).
at::Tensor conv_silu(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias, bool reverse) {
  check_bld(x, "conv_silu: x");
  const int64_t B = x.size(0), L = x.size(1), D = x.size(2), K = w.size(1);
  TORCH_CHECK(w.dim() == 2 && w.size(0) == D && w.is_contiguous() && w.scalar_type() == at::kFloat,
              "conv_silu: w must be a contiguous float [D, K]");
  TORCH_CHECK(K >= 1 && K <= 8, "conv_silu: kernel width must be 1..8");
  const bool has_bias = bias.defined() && bias.numel() > 0;
  auto out = at::empty({B, L, D}, x.options());
  const float* px = x.data_ptr<float>();
  const float* pw = w.data_ptr<float>();
  const float* pb = has_bias ? bias.contiguous().data_ptr<float>() : nullptr;
  float* po = out.data_ptr<float>();
  const int64_t sb = x.stride(0), st = x.stride(1);
  const int64_t blocks = (D + W - 1) / W;
  // every block's tap and bias vectors, made once ([blocks][K] and [blocks]; a few KB)
  std::vector<vf> wk(blocks * K), bv(blocks);
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t d0 = blk * W;
    const int n = static_cast<int>(std::min<int64_t>(W, D - d0));
    for (int64_t k = 0; k < K; ++k) {
      float tmp[W] = {0};
      for (int j = 0; j < n; ++j) tmp[j] = pw[(d0 + j) * K + k];
      std::memcpy(&wk[blk * K + k], tmp, sizeof(vf));
    }
    bv[blk] = has_bias ? load(pb + d0, n) : splat(0.0f);
  }
  // a task is one sequence, walked token by token across all its channels: rows are read and
  // written contiguously (walking one block of channels down the tokens strides by a row and
  // spends a TLB entry every other token)
  at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      for (int64_t t = 0; t < L; ++t) {
        for (int64_t blk = 0; blk < blocks; ++blk) {
          const int64_t d0 = blk * W;
          const int n = static_cast<int>(std::min<int64_t>(W, D - d0));
          vf acc = bv[blk];
          for (int64_t k = 0; k < K; ++k) {
            const int64_t s = reverse ? t + K - 1 - k : t - K + 1 + k;
            if (s >= 0 && s < L) acc = acc + wk[blk * K + k] * load(px + b * sb + s * st + d0, n);
          }
          store(po + (b * L + t) * D + d0, vsilu(acc), n);
        }
      }
    }
  });
  return out;
}

// The selective scan fused with the per-token steps around it, for inference. Per sequence b,
// channel d, state n and token t (in reverse order with `reverse`):
//   dt    = softplus(<dt_w[d], x_dbl[b, t, :R]> + dt_bias[d])
//   h[n]  = exp(dt A[d, n]) h[n] + dt u[b, t, d] B[b, t, n]      B = x_dbl[b, t, R:R+N]
//   y     = (<C[b, t], h> + Dv[d] u[b, t, d]) * silu(z[b, t, d])  C = x_dbl[b, t, R+N:R+2N]
// u [B, L, D] contiguous (the conv's output); x_dbl [B, L, R + 2N] contiguous (x_proj's output);
// dt_w [D, R] (dt_proj's weight); A [D, N] (negative); Dv, dt_bias [D]; z [B, L, D] with unit
// stride along D (a view of in_proj's output). -> y [B, L, D] contiguous.
at::Tensor scan_infer(const at::Tensor& u, const at::Tensor& x_dbl, const at::Tensor& dt_w,
                      const at::Tensor& A, const at::Tensor& Dv, const at::Tensor& z,
                      const at::Tensor& dt_bias, bool reverse) {
  check_bld(u, "scan_infer: u");
  check_bld(x_dbl, "scan_infer: x_dbl");
  check_bld(z, "scan_infer: z");
  const int64_t Bsz = u.size(0), L = u.size(1), D = u.size(2), N_rt = A.size(1), R = dt_w.size(1);
  TORCH_CHECK(u.is_contiguous() && x_dbl.is_contiguous(), "scan_infer: u and x_dbl must be contiguous");
  TORCH_CHECK(A.dim() == 2 && A.size(0) == D && N_rt <= 64, "scan_infer: A must be [D, N], N <= 64");
  TORCH_CHECK(dt_w.dim() == 2 && dt_w.size(0) == D && R <= 64, "scan_infer: dt_w must be [D, R], R <= 64");
  TORCH_CHECK(x_dbl.size(0) == Bsz && x_dbl.size(1) == L && x_dbl.size(2) == R + 2 * N_rt,
              "scan_infer: x_dbl must be [B, L, R + 2N]");
  TORCH_CHECK(z.size(0) == Bsz && z.size(1) == L && z.size(2) == D, "scan_infer: z must be [B, L, D]");
  for (const auto* t : {&A, &Dv, &dt_w, &dt_bias})
    TORCH_CHECK(t->scalar_type() == at::kFloat, "scan_infer: parameters must be float32");
  // [N, D] and [R, D]: one vector of channels per state and per dt rank
  const at::Tensor At = A.t().contiguous(), Wt = dt_w.t().contiguous();
  const at::Tensor Dc = Dv.contiguous(), bc = dt_bias.contiguous();
  auto y = at::empty({Bsz, L, D}, u.options());
  const float *pu = u.data_ptr<float>(), *px = x_dbl.data_ptr<float>(), *pz = z.data_ptr<float>();
  const float *pA = At.data_ptr<float>(), *pW = Wt.data_ptr<float>();
  const float *pD = Dc.data_ptr<float>(), *pbias = bc.data_ptr<float>();
  float* py = y.data_ptr<float>();
  const int64_t X = R + 2 * N_rt;  // x_dbl's row length
  const int64_t szb = z.stride(0), szt = z.stride(1);
  const int64_t blocks = (D + W - 1) / W;
  auto run = [&](auto ns) {
    // NS: the state count as a compile-time constant (16, the paper's), so the states live in
    // registers across tokens; 0: a runtime count
    constexpr int NS = decltype(ns)::value;
    constexpr int CAP = NS > 0 ? NS : 64;
    const int64_t N = NS > 0 ? NS : N_rt;
    // a task is one sequence's W channels: L steps of N exps each, a few microseconds
    at::parallel_for(0, Bsz * blocks, 4, [&](int64_t begin, int64_t end) {
      vf h[CAP], a_n[CAP], w_r[64];
      vf dt_tile[TILE], du_tile[TILE], du_skip[TILE], gate[TILE];
      for (int64_t task = begin; task < end; ++task) {
        const int64_t b = task / blocks, d0 = (task % blocks) * W;
        const int n = static_cast<int>(std::min<int64_t>(W, D - d0));
        for (int64_t s = 0; s < N; ++s) {
          a_n[s] = load(pA + s * D + d0, n);
          h[s] = splat(0.0f);
        }
        for (int64_t r = 0; r < R; ++r) w_r[r] = load(pW + r * D + d0, n);
        const vf bias = load(pbias + d0, n), dv = load(pD + d0, n);
        // In tiles of TILE tokens: first the per-token terms of the whole tile (independent
        // across tokens, so their long dependency chains - softplus, the gate's exp - overlap),
        // then the recurrence over the tile, which then only waits on the states.
        for (int64_t i0 = 0; i0 < L; i0 += TILE) {
          const int64_t m = std::min<int64_t>(TILE, L - i0);
          for (int64_t j = 0; j < m; ++j) {
            const int64_t t = reverse ? L - 1 - (i0 + j) : i0 + j;
            const float* xr = px + (b * L + t) * X;
            vf dt_raw = bias;
            for (int64_t r = 0; r < R; ++r) dt_raw = dt_raw + w_r[r] * xr[r];
            const vf dtv = vsoftplus(dt_raw);
            const vf uv = load(pu + (b * L + t) * D + d0, n);
            dt_tile[j] = dtv;
            du_tile[j] = dtv * uv;
            du_skip[j] = dv * uv;
            gate[j] = vsilu(load(pz + b * szb + t * szt + d0, n));
          }
          for (int64_t j = 0; j < m; ++j) {
            const int64_t t = reverse ? L - 1 - (i0 + j) : i0 + j;
            const float* xr = px + (b * L + t) * X;
            const float* bt = xr + R;
            const float* ct = xr + R + N;
            const vf dtv = dt_tile[j], du = du_tile[j];
            vf acc = splat(0.0f);
            for (int64_t s = 0; s < N; ++s) {
              h[s] = vexp(dtv * a_n[s]) * h[s] + du * bt[s];
              acc = acc + h[s] * ct[s];
            }
            store(py + (b * L + t) * D + d0, (acc + du_skip[j]) * gate[j], n);
          }
        }
      }
    });
  };
  if (N_rt == 16) run(std::integral_constant<int, 16>{});
  else run(std::integral_constant<int, 0>{});
  return y;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Inference-only Mamba kernels for use_repro.models.mamba_infer";
  m.def("conv_silu", &conv_silu, "silu(causal depthwise conv(x)) on [B, L, D]", py::arg("x"), py::arg("w"),
        py::arg("bias"), py::arg("reverse"));
  m.def("scan_infer", &scan_infer, "fused selective scan for inference on [B, L, D]", py::arg("u"),
        py::arg("x_dbl"), py::arg("dt_w"), py::arg("A"), py::arg("D"), py::arg("z"), py::arg("dt_bias"),
        py::arg("reverse"));
}
