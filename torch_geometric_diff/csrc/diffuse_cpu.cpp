// CPU kernels of the fused diffusion engine (torch_geometric_diff/nn/diffusion/).
//
// diffuse_steps runs h <- M (m_k * h) over a list of steps (or, in the
// backward direction, h <- m_k * (M h)), with M a CSR matrix. Each dropout
// mask is the one of diffusion.dropout_mask, bit for bit: element e takes
// `bits` bits of the SplitMix64 word mix(s_k + floor(e * bits / 64) * phi),
// read as a signed integer, and is kept iff they are >= `threshold`. The mask
// is applied to each output row while the row is still in cache, so a step
// costs one pass over the state instead of a dozen (hash, compare, convert,
// multiply, zero-fill, product).
//
// csr_mm is the plain CSR times dense product (no zero-fill of the output),
// csr_t_mm the product with the transpose, without forming it.
//
// cg_solve runs conjugate gradients on every column of B at once, with the
// stopping rule of implicit.conjugate_gradient and the Jacobi preconditioner
// z = dinv * r (dinv = 1: plain CG), in three passes per iteration (A p with
// p.Ap; the x, r update with r.r and r.z; the p update). Column sums are
// accumulated in double over fixed blocks of rows, then added block by block,
// so the result does not depend on the number of threads.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <tuple>
#include <vector>

namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;

inline uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// The per-step key s_k of diffusion.dropout_mask.
inline uint64_t step_key(int64_t seed, int64_t step) {
  return mix(static_cast<uint64_t>(seed) ^ mix(static_cast<uint64_t>(step + 1)));
}

template <int B> struct Lane;
template <> struct Lane<8> { using type = int8_t; };
template <> struct Lane<16> { using type = int16_t; };
template <> struct Lane<32> { using type = int32_t; };

// Multiplies row elements [e0, e0 + len) of the flattened state by their
// keep bit (0 or 1): the row's words are hashed into a buffer, whose lanes
// (little-endian, as torch's int64 -> intB view) are then compared and
// applied in one vectorisable loop.
template <int B, typename scalar_t>
inline void mask_row_bits(scalar_t* out, int64_t e0, int64_t len,
                          uint64_t key, int64_t threshold,
                          std::vector<uint64_t>& buf) {
  using lane_t = typename Lane<B>::type;
  constexpr int64_t L = 64 / B;
  const int64_t w0 = e0 / L, w1 = (e0 + len + L - 1) / L;
  buf.resize(w1 - w0);
  for (int64_t w = w0; w < w1; ++w)
    buf[w - w0] = mix(key + static_cast<uint64_t>(w) * kGolden);
  const lane_t* v = reinterpret_cast<const lane_t*>(buf.data()) + (e0 - w0 * L);
  const lane_t t = static_cast<lane_t>(threshold);
  for (int64_t j = 0; j < len; ++j)
    out[j] = v[j] >= t ? out[j] : scalar_t(0);
}

template <typename scalar_t>
inline void mask_row(scalar_t* out, int64_t e0, int64_t len, uint64_t key,
                     int64_t bits, int64_t threshold) {
  thread_local std::vector<uint64_t> buf;
  if (bits == 8) mask_row_bits<8>(out, e0, len, key, threshold, buf);
  else if (bits == 16) mask_row_bits<16>(out, e0, len, key, threshold, buf);
  else mask_row_bits<32>(out, e0, len, key, threshold, buf);
}

template <typename scalar_t>
inline void spmm_row(const int64_t* crow, const int64_t* col,
                     const scalar_t* val, const scalar_t* h, scalar_t* o,
                     int64_t i, int64_t F) {
  const int64_t s = crow[i], t = crow[i + 1];
  if (s == t) {
    for (int64_t f = 0; f < F; ++f) o[f] = 0;
    return;
  }
  {
    const scalar_t w = val[s];
    const scalar_t* x = h + col[s] * F;
    for (int64_t f = 0; f < F; ++f) o[f] = w * x[f];
  }
  for (int64_t k = s + 1; k < t; ++k) {
    const scalar_t w = val[k];
    const scalar_t* x = h + col[k] * F;
    for (int64_t f = 0; f < F; ++f) o[f] += w * x[f];
  }
}

// Raw pointers of a CSR matrix with int64 indices.
template <typename scalar_t>
struct CSR {
  int64_t n;  // rows
  const int64_t* cr;
  const int64_t* cl;
  const scalar_t* v;
  CSR(const at::Tensor& crow, const at::Tensor& col, const at::Tensor& val)
      : n(crow.size(0) - 1), cr(crow.data_ptr<int64_t>()),
        cl(col.data_ptr<int64_t>()), v(val.data_ptr<scalar_t>()) {}
};

// Row blocks small enough that parallel_for overhead stays negligible.
inline int64_t grain(int64_t F) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(F, 1)); }

template <typename scalar_t>
void csr_mm_impl(const at::Tensor& crow, const at::Tensor& col,
                 const at::Tensor& val, const at::Tensor& h, at::Tensor& out) {
  const CSR<scalar_t> a(crow, col, val);
  const int64_t F = h.size(1);
  const scalar_t* H = h.data_ptr<scalar_t>();
  scalar_t* O = out.data_ptr<scalar_t>();
  at::parallel_for(0, a.n, grain(F), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) spmm_row(a.cr, a.cl, a.v, H, O + i * F, i, F);
  });
}

template <typename scalar_t>
at::Tensor diffuse_impl(const at::Tensor& x, const at::Tensor& crow,
                        const at::Tensor& col, const at::Tensor& val,
                        const std::vector<int64_t>& steps, bool transpose,
                        int64_t bits, int64_t threshold, int64_t seed,
                        bool dropout) {
  const CSR<scalar_t> a(crow, col, val);
  const int64_t n = a.n, F = x.size(1), K = steps.size();
  at::Tensor bufs[2] = {at::empty_like(x), at::empty_like(x)};
  const scalar_t* cur = x.data_ptr<scalar_t>();
  int which = 0;
  if (dropout && !transpose) {  // m_{steps[0]} * x into a buffer: x is read-only.
    const uint64_t key = step_key(seed, steps[0]);
    scalar_t* dst = bufs[1].data_ptr<scalar_t>();
    const scalar_t* src = cur;
    at::parallel_for(0, n, grain(F), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        std::copy(src + i * F, src + (i + 1) * F, dst + i * F);
        mask_row(dst + i * F, i * F, F, key, bits, threshold);
      }
    });
    cur = dst;
  }
  for (int64_t j = 0; j < K; ++j) {
    scalar_t* dst = bufs[which].data_ptr<scalar_t>();
    // Forward: the mask of the next step; backward: this step's mask.
    const bool masked = dropout && (transpose || j + 1 < K);
    const uint64_t key =
        masked ? step_key(seed, transpose ? steps[j] : steps[j + 1]) : 0;
    const scalar_t* src = cur;
    at::parallel_for(0, n, grain(F), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        spmm_row(a.cr, a.cl, a.v, src, dst + i * F, i, F);
        if (masked) mask_row(dst + i * F, i * F, F, key, bits, threshold);
      }
    });
    cur = dst;
    which ^= 1;
  }
  return bufs[which ^ 1];
}

// out = A^T h without forming A^T: every row of h is scattered into the rows
// of out named by its row of A. Threads own disjoint column slices of out.
template <typename scalar_t>
void csr_t_mm_impl(const at::Tensor& crow, const at::Tensor& col,
                   const at::Tensor& val, const at::Tensor& h, at::Tensor& out) {
  const CSR<scalar_t> a(crow, col, val);
  const int64_t F = h.size(1);
  const scalar_t* H = h.data_ptr<scalar_t>();
  scalar_t* O = out.data_ptr<scalar_t>();
  at::parallel_for(0, F, 64, [&](int64_t f0, int64_t f1) {
    for (int64_t i = 0; i < a.n; ++i) {
      const scalar_t* x = H + i * F;
      for (int64_t k = a.cr[i]; k < a.cr[i + 1]; ++k) {
        const scalar_t w = a.v[k];
        scalar_t* o = O + a.cl[k] * F;
        for (int64_t f = f0; f < f1; ++f) o[f] += w * x[f];
      }
    }
  });
}

constexpr int64_t kBlock = 256;  // rows per partial column sum

std::vector<double> block_sums(const std::vector<double>& part, int64_t F) {
  std::vector<double> out(F, 0.0);
  for (size_t k = 0; k < part.size(); k += F)
    for (int64_t f = 0; f < F; ++f) out[f] += part[k + f];
  return out;
}

template <typename scalar_t>
std::tuple<at::Tensor, int64_t, double> cg_impl(
    const at::Tensor& crow, const at::Tensor& col, const at::Tensor& val,
    const at::Tensor& b, const at::Tensor& dinv, double tol, int64_t max_iter) {
  const CSR<scalar_t> a(crow, col, val);
  const int64_t n = a.n, F = b.size(1), nb = (n + kBlock - 1) / kBlock;
  at::Tensor x = b.clone(), r = at::empty_like(b), p = at::empty_like(b),
             ap = at::empty_like(b);
  const scalar_t* B = b.data_ptr<scalar_t>();
  const scalar_t* D = dinv.data_ptr<scalar_t>();
  scalar_t *X = x.data_ptr<scalar_t>(), *R = r.data_ptr<scalar_t>(),
           *P = p.data_ptr<scalar_t>(), *AP = ap.data_ptr<scalar_t>();
  std::vector<double> part(nb * F), part2(nb * F), part3(nb * F);
  // r = b - A x, p = z = dinv r, with r.r, b.b and r.z per column.
  at::parallel_for(0, nb, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      double* s = part.data() + k * F;
      double* t = part2.data() + k * F;
      double* u = part3.data() + k * F;
      std::fill(s, s + F, 0.0);
      std::fill(t, t + F, 0.0);
      std::fill(u, u + F, 0.0);
      for (int64_t i = k * kBlock; i < std::min(n, (k + 1) * kBlock); ++i) {
        spmm_row(a.cr, a.cl, a.v, X, AP + i * F, i, F);
        for (int64_t f = 0; f < F; ++f) {
          const scalar_t v = B[i * F + f] - AP[i * F + f];
          const scalar_t z = D[i] * v;
          R[i * F + f] = v;
          P[i * F + f] = z;
          s[f] += double(v) * v;
          t[f] += double(B[i * F + f]) * B[i * F + f];
          u[f] += double(v) * z;
        }
      }
    }
  });
  std::vector<double> rr = block_sums(part, F);
  std::vector<double> bb = block_sums(part2, F);
  std::vector<double> rz = block_sums(part3, F);
  std::vector<double> stop(F), alpha(F), beta(F);
  const double tiny = std::numeric_limits<scalar_t>::min();
  for (int64_t f = 0; f < F; ++f) {
    bb[f] = std::max(bb[f], tiny);
    stop[f] = tol * tol * bb[f];
  }
  int64_t it = 0;
  while (it < max_iter) {
    std::vector<char> active(F);
    bool any = false;
    for (int64_t f = 0; f < F; ++f) any |= (active[f] = rr[f] > stop[f]);
    if (!any) break;
    // ap = A p, with p.ap per column.
    at::parallel_for(0, nb, 1, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k) {
        double* s = part.data() + k * F;
        std::fill(s, s + F, 0.0);
        for (int64_t i = k * kBlock; i < std::min(n, (k + 1) * kBlock); ++i) {
          spmm_row(a.cr, a.cl, a.v, P, AP + i * F, i, F);
          for (int64_t f = 0; f < F; ++f)
            s[f] += double(P[i * F + f]) * AP[i * F + f];
        }
      }
    });
    const std::vector<double> pap = block_sums(part, F);
    for (int64_t f = 0; f < F; ++f) alpha[f] = active[f] ? rz[f] / pap[f] : 0.0;
    // x += alpha p, r -= alpha ap, with r.r and r.z per column.
    at::parallel_for(0, nb, 1, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k) {
        double* s = part.data() + k * F;
        double* u = part3.data() + k * F;
        std::fill(s, s + F, 0.0);
        std::fill(u, u + F, 0.0);
        for (int64_t i = k * kBlock; i < std::min(n, (k + 1) * kBlock); ++i)
          for (int64_t f = 0; f < F; ++f) {
            const scalar_t al = static_cast<scalar_t>(alpha[f]);
            X[i * F + f] += al * P[i * F + f];
            const scalar_t v = R[i * F + f] - al * AP[i * F + f];
            R[i * F + f] = v;
            s[f] += double(v) * v;
            u[f] += double(v) * (D[i] * v);
          }
      }
    });
    const std::vector<double> rr_new = block_sums(part, F);
    const std::vector<double> rz_new = block_sums(part3, F);
    for (int64_t f = 0; f < F; ++f) beta[f] = active[f] ? rz_new[f] / rz[f] : 0.0;
    // p = dinv r + beta p.
    at::parallel_for(0, n, grain(F), [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t f = 0; f < F; ++f)
          P[i * F + f] =
              D[i] * R[i * F + f] + static_cast<scalar_t>(beta[f]) * P[i * F + f];
    });
    rr = rr_new;
    rz = rz_new;
    ++it;
  }
  double res = 0.0;
  for (int64_t f = 0; f < F; ++f) res = std::max(res, rr[f] / bb[f]);
  return {x, it, std::sqrt(res)};
}

// Checks the CSR arrays against the dense operand h, whose rows the column
// indices address (cols: the number of columns of the matrix).
void check(const at::Tensor& crow, const at::Tensor& col,
           const at::Tensor& val, const at::Tensor& h, int64_t cols) {
  TORCH_CHECK(h.device().is_cpu() && h.dim() == 2 && h.is_contiguous(),
              "the dense operand must be a contiguous 2-D CPU tensor");
  TORCH_CHECK(crow.scalar_type() == at::kLong && col.scalar_type() == at::kLong,
              "CSR indices must be int64");
  TORCH_CHECK(crow.is_contiguous() && col.is_contiguous() && val.is_contiguous(),
              "CSR tensors must be contiguous");
  TORCH_CHECK(val.scalar_type() == h.scalar_type(),
              "CSR values and the dense operand must have the same dtype");
  TORCH_CHECK(crow.dim() == 1 && crow.size(0) >= 1 && col.numel() == val.numel() &&
              crow[-1].item<int64_t>() == col.numel(), "malformed CSR arrays");
  TORCH_CHECK(col.numel() == 0 || (col.min().item<int64_t>() >= 0 &&
                                   col.max().item<int64_t>() < cols),
              "CSR column index out of range");
}

}  // namespace

at::Tensor diffuse_steps(at::Tensor x, at::Tensor crow, at::Tensor col,
                         at::Tensor val, std::vector<int64_t> steps,
                         bool transpose, double p, int64_t bits,
                         int64_t threshold, int64_t seed) {
  check(crow, col, val, x, x.size(0));
  TORCH_CHECK(crow.size(0) == x.size(0) + 1, "crow must have N + 1 entries");
  TORCH_CHECK(!steps.empty(), "steps must not be empty");
  TORCH_CHECK(bits == 8 || bits == 16 || bits == 32, "bits must be 8, 16 or 32");
  at::Tensor out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "diffuse_steps", [&] {
    out = diffuse_impl<scalar_t>(x, crow, col, val, steps, transpose, bits,
                                 threshold, seed, p > 0);
  });
  return out;
}

at::Tensor csr_mm(at::Tensor crow, at::Tensor col, at::Tensor val, at::Tensor h) {
  check(crow, col, val, h, h.size(0));
  at::Tensor out = at::empty({crow.size(0) - 1, h.size(1)}, h.options());
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "csr_mm", [&] {
    csr_mm_impl<scalar_t>(crow, col, val, h, out);
  });
  return out;
}

at::Tensor csr_t_mm(at::Tensor crow, at::Tensor col, at::Tensor val,
                    at::Tensor h, int64_t num_cols) {
  check(crow, col, val, h, num_cols);
  TORCH_CHECK(crow.size(0) == h.size(0) + 1, "crow must have rows(h) + 1 entries");
  at::Tensor out = at::zeros({num_cols, h.size(1)}, h.options());
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "csr_t_mm", [&] {
    csr_t_mm_impl<scalar_t>(crow, col, val, h, out);
  });
  return out;
}

std::tuple<at::Tensor, int64_t, double> cg_solve(at::Tensor crow, at::Tensor col,
                                                 at::Tensor val, at::Tensor b,
                                                 at::Tensor dinv, double tol,
                                                 int64_t max_iter) {
  check(crow, col, val, b, b.size(0));
  TORCH_CHECK(crow.size(0) == b.size(0) + 1, "crow must have N + 1 entries");
  TORCH_CHECK(dinv.device().is_cpu() && dinv.dim() == 1 &&
              dinv.size(0) == b.size(0) && dinv.is_contiguous() &&
              dinv.scalar_type() == b.scalar_type(),
              "dinv must be a contiguous 1-D CPU tensor of N entries of b's dtype");
  std::tuple<at::Tensor, int64_t, double> out;
  AT_DISPATCH_FLOATING_TYPES(b.scalar_type(), "cg_solve", [&] {
    out = cg_impl<scalar_t>(crow, col, val, b, dinv, tol, max_iter);
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("diffuse_steps", &diffuse_steps, "Fused masked diffusion steps (CPU)");
  m.def("csr_mm", &csr_mm, "CSR times dense (CPU)");
  m.def("csr_t_mm", &csr_t_mm, "CSR transposed times dense (CPU)");
  m.def("cg_solve", &cg_solve, "Jacobi-preconditioned conjugate gradients on every column (CPU)");
}
