// I-Dynamic depth-wise convolution on the CPU, forward and backward, one pass each.
//
//   y[b, c, h, w] = sum_{i, j} k[b, g, i, j, h, w] * x[b, c, h + i - p, w + j - p],  g = c / (C / G)
//
// Work is split over (sample, group, row) items with at::parallel_for. An item reads the kernel
// row k[b, g, :, :, h, :] once and the K input rows around h of the group's C / G channels, and
// writes one row per channel: everything it touches fits in L1/L2, and every inner loop runs
// over contiguous columns (vectorised by the compiler). Items never write to the same place:
// an item owns rows of its output.
//   grad_x[b, c, h + i - p, w + j - p] += k[b, g, i, j, h, w] * grad_y[b, c, h, w]
// is the forward pass with the shift moved from the read to the write (the "adjoint" pass
// below), run over tiles of grad_x's rows, and
//   grad_k[b, g, i, j, h, w] = sum_{c in g} grad_y[b, c, h, w] * x[b, c, h + i - p, w + j - p].
// Positions outside the map are zero (zero padding), so their terms are skipped.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include <algorithm>
#ifdef __linux__
#include <sys/mman.h>
#endif
#include <cstdint>
#include <tuple>

namespace {

struct Dims {
  int64_t B, C, H, W, G, K, CG, P;
};

Dims dims_of(const at::Tensor& x, const at::Tensor& k) {
  TORCH_CHECK(x.dim() == 4 && k.dim() == 6, "idynamic_cpu: x must be (B, C, H, W), kernels (B, G, K, K, H, W)");
  TORCH_CHECK(x.is_contiguous() && k.is_contiguous(), "idynamic_cpu: inputs must be contiguous");
  TORCH_CHECK(x.scalar_type() == k.scalar_type(), "idynamic_cpu: x and kernels must have one dtype");
  Dims d{x.size(0), x.size(1), x.size(2), x.size(3), k.size(1), k.size(2), 0, 0};
  TORCH_CHECK(k.size(0) == d.B && k.size(3) == d.K && k.size(4) == d.H && k.size(5) == d.W,
              "idynamic_cpu: kernels do not match x");
  TORCH_CHECK(d.G > 0 && d.C % d.G == 0 && d.K % 2 == 1, "idynamic_cpu: bad groups or kernel size");
  d.CG = d.C / d.G;
  d.P = d.K / 2;
  return d;
}

// Columns w of an output row whose input column w + dj lies inside the map.
inline void column_range(int64_t W, int64_t dj, int64_t& w0, int64_t& w1) {
  w0 = std::max<int64_t>(0, -dj);
  w1 = std::min<int64_t>(W, W - dj);
}

// Rows of one work item (rows <= 0: this default): long enough that an item reads each kernel
// plane as one contiguous run of ROWS * W values (49 planes are too many streams for the
// prefetchers row by row), short enough that the item's rows of y / x of its group's channels
// stay in L1.
constexpr int64_t ROWS = 8;

// Calls fn(b, g, r0, r1) for every (sample, group, tile of rows [r0, r1)) item, in parallel.
template <typename Fn>
void for_each_tile(const Dims& d, int64_t rows, Fn fn) {
  rows = rows > 0 ? rows : ROWS;
  const int64_t tiles = (d.H + rows - 1) / rows, items = d.B * d.G * tiles;
  at::parallel_for(0, items, 1, [&](int64_t begin, int64_t end) {
    for (int64_t it = begin; it < end; ++it) {
      const int64_t t = it % tiles, bg = it / tiles;
      fn(bg / d.G, bg % d.G, t * rows, std::min(d.H, (t + 1) * rows));
    }
  });
}

// out[w] += a[w] * b[w] for w in [w0, w1)
template <typename T>
inline void multiply_add(T* __restrict__ out, const T* __restrict__ a, const T* __restrict__ b,
                         int64_t w0, int64_t w1) {
#pragma omp simd
  for (int64_t w = w0; w < w1; ++w) out[w] += a[w] * b[w];
}

// Kernel rows h that tap row i uses in a tile of output rows [r0, r1): the shifted row h + i - p
// is inside the map, and the output row (h, or h + i - p for the adjoint pass) inside the tile.
inline void tap_rows(const Dims& d, int64_t i, int64_t r0, int64_t r1, bool adjoint, int64_t& ha, int64_t& hb) {
  const int64_t di = i - d.P, shift = adjoint ? di : 0;
  ha = std::max({r0 - shift, int64_t(0), -di});
  hb = std::min({r1 - shift, d.H, d.H - di});
}

// The pass that applies the kernels: forward (adjoint false), out = y and src = x,
//   out[c, h, w] += k[i, j, h, w] * src[c, h + i - p, w + j - p];
// adjoint, out = grad_x and src = grad_y: the same terms with the shift on the write,
//   out[c, h + i - p, w + j - p] += k[i, j, h, w] * src[c, h, w].
template <typename T>
void apply_kernels(const Dims& d, int64_t rows, bool adjoint, const T* src, const T* k, T* out) {
  const int64_t HW = d.H * d.W, KK = d.K * d.K;
  for_each_tile(d, rows, [&](int64_t b, int64_t g, int64_t r0, int64_t r1) {  // rows of out
    const T* kg = k + (b * d.G + g) * KK * HW;
    const T* sg = src + (b * d.C + g * d.CG) * HW;
    T* og = out + (b * d.C + g * d.CG) * HW;
    for (int64_t cc = 0; cc < d.CG; ++cc) std::fill(og + cc * HW + r0 * d.W, og + cc * HW + r1 * d.W, T(0));
    for (int64_t i = 0; i < d.K; ++i) {
      int64_t ha, hb;
      tap_rows(d, i, r0, r1, adjoint, ha, hb);
      for (int64_t j = 0; j < d.K; ++j) {
        const int64_t shift = (i - d.P) * d.W + j - d.P;  // of a flat position by tap (i, j)
        int64_t w0, w1;
        column_range(d.W, j - d.P, w0, w1);
        const T* plane = kg + (i * d.K + j) * HW;
        for (int64_t h = ha; h < hb; ++h)
          for (int64_t cc = 0; cc < d.CG; ++cc) {
            const int64_t base = cc * HW + h * d.W;
            if (adjoint)
              multiply_add(og + base + shift, plane + h * d.W, sg + base, w0, w1);
            else
              multiply_add(og + base, plane + h * d.W, sg + base + shift, w0, w1);
          }
      }
    }
  });
}

template <typename T>
void grad_k_kernel(const Dims& d, int64_t rows, const T* gy, const T* x, T* gk) {
  const int64_t HW = d.H * d.W, KK = d.K * d.K;
  for_each_tile(d, rows, [&](int64_t b, int64_t g, int64_t r0, int64_t r1) {
    T* gkg = gk + (b * d.G + g) * KK * HW;
    const T* gyg = gy + (b * d.C + g * d.CG) * HW;
    const T* xg = x + (b * d.C + g * d.CG) * HW;
    for (int64_t i = 0; i < d.K; ++i) {
      for (int64_t j = 0; j < d.K; ++j) {
        const int64_t dj = j - d.P;
        int64_t w0, w1;
        column_range(d.W, dj, w0, w1);
        T* plane = gkg + (i * d.K + j) * HW;
        std::fill(plane + r0 * d.W, plane + r1 * d.W, T(0));
        for (int64_t h = r0; h < r1; ++h) {
          const int64_t hi = h + i - d.P;
          if (hi < 0 || hi >= d.H) continue;
          for (int64_t cc = 0; cc < d.CG; ++cc)
            multiply_add(plane + h * d.W, gyg + cc * HW + h * d.W, xg + cc * HW + hi * d.W + dj, w0, w1);
        }
      }
    }
  });
}

// An uninitialised tensor like `like`. A large one is fresh memory from the OS, and writing it
// first costs a page fault per 4 KiB page: 38k of them for a T model's stage-1 kernel gradient
// (157 MB), about as long as computing it. Transparent huge pages, where the kernel offers them
// on request (madvise mode), make that 2 MiB pages and 75 faults.
at::Tensor fresh_like(const at::Tensor& like) {
  at::Tensor out = at::empty_like(like);
#ifdef __linux__
  constexpr uintptr_t HUGE_PAGE = uintptr_t(1) << 21;
  const size_t bytes = out.numel() * out.element_size();
  if (bytes >= 4 * HUGE_PAGE) {
    const uintptr_t begin = (reinterpret_cast<uintptr_t>(out.data_ptr()) + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    const uintptr_t end = (reinterpret_cast<uintptr_t>(out.data_ptr()) + bytes) & ~(HUGE_PAGE - 1);
    if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);  // advice: may fail
  }
#endif
  return out;
}

at::Tensor idynamic_forward(const at::Tensor& x, const at::Tensor& k, int64_t rows) {
  const Dims d = dims_of(x, k);
  at::Tensor y = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "idynamic_forward", [&] {
    apply_kernels<scalar_t>(d, rows, false, x.data_ptr<scalar_t>(), k.data_ptr<scalar_t>(), y.data_ptr<scalar_t>());
  });
  return y;
}

std::tuple<at::Tensor, at::Tensor> idynamic_backward(const at::Tensor& grad_y, const at::Tensor& x,
                                                     const at::Tensor& k, bool need_x, bool need_k,
                                                     int64_t rows) {
  const Dims d = dims_of(x, k);
  TORCH_CHECK(grad_y.is_contiguous() && grad_y.sizes() == x.sizes() && grad_y.scalar_type() == x.scalar_type(),
              "idynamic_cpu: grad_y must be a contiguous tensor like x");
  // a gradient that is not needed comes back empty (0 elements)
  at::Tensor gx = need_x ? at::empty_like(x) : at::empty({0}, x.options());
  at::Tensor gk = need_k ? fresh_like(k) : at::empty({0}, k.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "idynamic_backward", [&] {
    if (need_x) apply_kernels<scalar_t>(d, rows, true, grad_y.data_ptr<scalar_t>(), k.data_ptr<scalar_t>(), gx.data_ptr<scalar_t>());
    if (need_k) grad_k_kernel<scalar_t>(d, rows, grad_y.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), gk.data_ptr<scalar_t>());
  });
  return {gx, gk};
}


// ---- Fused: the kernels are a 1x1 conv of `hidden`, made tile by tile and never stored ----
//
// Kernel taps (i, 0..K-1) of every group, for rows [h0, h1) of a sample, are one matmul
//   taps = wrows[i] (G*K, R) @ hidden[b, :, h0:h1, :] (R, n) + brows[i],  n = (h1 - h0) * W
// (row i of the generator's weight, (G, K, K, R) in the mixer, comes as wrows = (K, G*K, R)).
// A (G*K, n) block stays in L2 while it is applied, then the next row's block replaces it.
// Backward recomputes the blocks: one pass over tiles of x rows makes grad_x (a gather, as
// above), one over tiles of output rows makes the taps' gradient block by block and turns it at
// once into the tile's rows of grad_hidden (its own rows: no two tiles write the same place) and
// the tile's parts of grad_wrows / grad_brows, summed over tiles in tile order (deterministic).

struct Fused {
  Dims d;
  int64_t R;
};

Fused fused_dims(const at::Tensor& x, const at::Tensor& hidden, const at::Tensor& wrows, const at::Tensor& brows) {
  TORCH_CHECK(x.dim() == 4 && hidden.dim() == 4 && wrows.dim() == 3 && brows.dim() == 2,
              "idynamic_cpu fused: x (B, C, H, W), hidden (B, R, H, W), wrows (K, G*K, R), brows (K, G*K)");
  TORCH_CHECK(x.is_contiguous() && hidden.is_contiguous() && wrows.is_contiguous() && brows.is_contiguous(),
              "idynamic_cpu fused: inputs must be contiguous");
  const int64_t K = wrows.size(0);
  TORCH_CHECK(K % 2 == 1 && wrows.size(1) % K == 0, "idynamic_cpu fused: bad kernel size");
  Fused f{{x.size(0), x.size(1), x.size(2), x.size(3), wrows.size(1) / K, K, 0, K / 2}, hidden.size(1)};
  TORCH_CHECK(hidden.size(0) == f.d.B && hidden.size(2) == f.d.H && hidden.size(3) == f.d.W &&
                  wrows.size(2) == f.R && brows.size(0) == K && brows.size(1) == f.d.G * K,
              "idynamic_cpu fused: shapes do not match");
  TORCH_CHECK(f.d.G > 0 && f.d.C % f.d.G == 0, "idynamic_cpu fused: groups do not divide channels");
  f.d.CG = f.d.C / f.d.G;
  return f;
}

// Calls fn(tile, b, r0, r1) for every (sample, tile of rows) in parallel; returns the tile count.
template <typename Fn>
int64_t for_each_row_tile(const Dims& d, int64_t rows, Fn fn) {
  const int64_t per = (d.H + rows - 1) / rows, tiles = d.B * per;
  at::parallel_for(0, tiles, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t b = t / per, r0 = (t % per) * rows;
      fn(t, b, r0, std::min(d.H, r0 + rows));
    }
  });
  return tiles;
}

int64_t fused_rows(const Dims& d, int64_t rows) {
  if (rows > 0) return std::min(rows, d.H);
  // a (G*K, rows*W) block of taps of at most 2^17 floats (512 KiB, half an L2)
  return std::max<int64_t>(1, std::min<int64_t>(d.H, (int64_t(1) << 17) / std::max<int64_t>(1, d.G * d.K * d.W)));
}

// Whether every value is finite (x * 0 is NaN for NaN and +-inf: one vectorised pass; at::isfinite
// is three, and was 3% of I-Dynamic-T's time).
template <typename T>
bool all_finite(const at::Tensor& t) {
  const T* p = t.data_ptr<T>();
  const int64_t n = t.numel();
  T acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t e = 0; e < n; ++e) acc += p[e] * T(0);
  return acc == T(0);
}

// Zero columns [0, w0) and [w1, W) of `rows` rows of width W.
template <typename T>
void zero_outside(T* block, int64_t rows, int64_t W, int64_t w0, int64_t w1) {
  for (int64_t r = 0; r < rows; ++r) {
    std::fill(block + r * W, block + r * W + w0, T(0));
    std::fill(block + r * W + w1, block + (r + 1) * W, T(0));
  }
}

// out[r, w] += a[r, w] * b[r, w] for `rows` rows of width W and the columns [w0, w1): in one loop
// across the rows when `flat` (a is zero outside the columns and b finite, so the terms of the
// other columns, whose b is the neighbouring row's edge, add exact zeros; this is what makes the
// small maps of stages 3-4 fast: 14 or 7 columns are too short a loop), else row by row.
template <typename T>
inline void rows_multiply_add(T* out, const T* a, const T* b, int64_t rows, int64_t W, int64_t w0, int64_t w1,
                              bool flat) {
  if (flat) {
    multiply_add(out, a, b, w0, (rows - 1) * W + w1);
    return;
  }
  for (int64_t r = 0; r < rows; ++r) multiply_add(out + r * W, a + r * W, b + r * W, w0, w1);
}

// taps (G*K, (h1 - h0) * W) of kernel row i for rows [h0, h1) of sample b, bias added (by hand:
// addmm's broadcast bias is a strided copy of the whole block first, 7% of I-Dynamic-T's time),
// zero in the columns where the tap meets the padding
template <typename T>
at::Tensor make_taps(const at::Tensor& hidden, const at::Tensor& wrows, const at::Tensor& brows,
                     int64_t b, int64_t i, int64_t h0, int64_t h1, const Dims& d) {
  const at::Tensor hb = hidden.select(0, b).view({hidden.size(1), d.H * d.W}).narrow(1, h0 * d.W, (h1 - h0) * d.W);
  at::Tensor taps = at::mm(wrows.select(0, i), hb);
  const int64_t n = (h1 - h0) * d.W;
  T* tp = taps.data_ptr<T>();
  const T* bias = brows.data_ptr<T>() + i * d.G * d.K;
  for (int64_t row = 0; row < d.G * d.K; ++row) {
    const T value = bias[row];
    T* __restrict__ tap = tp + row * n;
#pragma omp simd
    for (int64_t e = 0; e < n; ++e) tap[e] += value;
    // tap j reads input column w + j - p: zero where that is padding (see rows_multiply_add)
    int64_t w0, w1;
    column_range(d.W, row % d.K - d.P, w0, w1);
    zero_outside(tap, h1 - h0, d.W, w0, w1);
  }
  return taps;
}

// apply_kernels' pass on a tile of output rows [r0, r1) of sample b, the kernels made tap row by
// tap row from `hidden` (forward: out = y, src = x; adjoint: out = grad_x, src = grad_y).
template <typename T>
void fused_apply_tile(const Dims& d, bool adjoint, const at::Tensor& src, const at::Tensor& hidden,
                      const at::Tensor& wrows, const at::Tensor& brows, at::Tensor& out, int64_t b, int64_t r0,
                      int64_t r1, bool flat) {
  const int64_t HW = d.H * d.W;
  T* ob = out.data_ptr<T>() + b * d.C * HW;
  const T* sb = src.data_ptr<T>() + b * d.C * HW;
  for (int64_t c = 0; c < d.C; ++c) std::fill(ob + c * HW + r0 * d.W, ob + c * HW + r1 * d.W, T(0));
  for (int64_t i = 0; i < d.K; ++i) {
    int64_t ha, hb;
    tap_rows(d, i, r0, r1, adjoint, ha, hb);
    if (ha >= hb) continue;
    const at::Tensor taps = make_taps<T>(hidden, wrows, brows, b, i, ha, hb, d);
    const T* tp = taps.data_ptr<T>();
    const int64_t n = (hb - ha) * d.W;
    for (int64_t g = 0; g < d.G; ++g) {
      for (int64_t j = 0; j < d.K; ++j) {
        const int64_t shift = (i - d.P) * d.W + j - d.P;
        int64_t w0, w1;
        column_range(d.W, j - d.P, w0, w1);
        const T* tap = tp + (g * d.K + j) * n;
        for (int64_t cc = 0; cc < d.CG; ++cc) {
          const int64_t base = (g * d.CG + cc) * HW + ha * d.W;
          // in the flat loop the writes (adjoint) or reads (forward) that wrap around a row's
          // edge meet a zero tap: they add exact zeros
          if (adjoint)
            rows_multiply_add(ob + base + shift, tap, sb + base, hb - ha, d.W, w0, w1, flat);
          else
            rows_multiply_add(ob + base, tap, sb + base + shift, hb - ha, d.W, w0, w1, flat);
        }
      }
    }
  }
}

at::Tensor idynamic_fused_forward(const at::Tensor& x, const at::Tensor& hidden, const at::Tensor& wrows,
                                  const at::Tensor& brows, int64_t rows) {
  const Fused f = fused_dims(x, hidden, wrows, brows);
  at::Tensor y = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "idynamic_fused_forward", [&] {
    const bool flat = all_finite<scalar_t>(x);
    for_each_row_tile(f.d, fused_rows(f.d, rows), [&](int64_t, int64_t b, int64_t r0, int64_t r1) {
      fused_apply_tile<scalar_t>(f.d, false, x, hidden, wrows, brows, y, b, r0, r1, flat);
    });
  });
  return y;
}

// The taps' gradient for kernel row i, rows [ha, hb) of sample b: (G*K, (hb - ha) * W).
template <typename T>
at::Tensor taps_grad(const Dims& d, const at::Tensor& gy, const at::Tensor& x, int64_t b, int64_t i, int64_t ha,
                     int64_t hb) {
  const int64_t HW = d.H * d.W, n = (hb - ha) * d.W;
  at::Tensor gt = at::empty({d.G * d.K, n}, x.options());
  T* gp = gt.data_ptr<T>();
  const T* gyb = gy.data_ptr<T>() + b * d.C * HW;
  const T* xb = x.data_ptr<T>() + b * d.C * HW;
  for (int64_t g = 0; g < d.G; ++g)
    for (int64_t j = 0; j < d.K; ++j) {
      const int64_t dj = j - d.P;
      int64_t w0, w1;
      column_range(d.W, dj, w0, w1);
      T* row = gp + (g * d.K + j) * n;
      std::fill(row, row + n, T(0));
      for (int64_t cc = 0; cc < d.CG; ++cc) {
        const int64_t c = g * d.CG + cc;
        // across rows: the other columns' terms are overwritten below (exact whatever x holds)
        rows_multiply_add(row, gyb + c * HW + ha * d.W, xb + c * HW + (ha + i - d.P) * d.W + dj, hb - ha, d.W, w0,
                          w1, true);
      }
      zero_outside(row, hb - ha, d.W, w0, w1);
    }
  return gt;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> idynamic_fused_backward(
    const at::Tensor& grad_y, const at::Tensor& x, const at::Tensor& hidden, const at::Tensor& wrows,
    const at::Tensor& brows, bool need_x, bool need_hidden, bool need_weights, int64_t tile_rows) {
  const Fused f = fused_dims(x, hidden, wrows, brows);
  const Dims& d = f.d;
  TORCH_CHECK(grad_y.is_contiguous() && grad_y.sizes() == x.sizes() && grad_y.scalar_type() == x.scalar_type(),
              "idynamic_cpu fused: grad_y must be a contiguous tensor like x");
  const int64_t rows = fused_rows(d, tile_rows), tiles = d.B * ((d.H + rows - 1) / rows);
  at::Tensor gx = need_x ? at::empty_like(x) : at::empty({0}, x.options());
  at::Tensor gh = need_hidden ? at::zeros_like(hidden) : at::empty({0}, x.options());
  at::Tensor gw_parts = need_weights ? at::zeros({tiles, d.K, d.G * d.K, f.R}, x.options()) : at::empty({0}, x.options());
  at::Tensor gb_parts = need_weights ? at::zeros({tiles, d.K, d.G * d.K}, x.options()) : at::empty({0}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "idynamic_fused_backward", [&] {
    const bool flat = need_x && all_finite<scalar_t>(grad_y);
    if (need_x)
      for_each_row_tile(d, rows, [&](int64_t, int64_t b, int64_t r0, int64_t r1) {
        fused_apply_tile<scalar_t>(d, true, grad_y, hidden, wrows, brows, gx, b, r0, r1, flat);
      });
    if (need_hidden || need_weights)
      for_each_row_tile(d, rows, [&](int64_t t, int64_t b, int64_t r0, int64_t r1) {
        for (int64_t i = 0; i < d.K; ++i) {
          int64_t ha, hb;
          tap_rows(d, i, r0, r1, false, ha, hb);
          if (ha >= hb) continue;
          const at::Tensor gt = taps_grad<scalar_t>(d, grad_y, x, b, i, ha, hb);
          const at::Tensor hid = hidden.select(0, b).view({f.R, d.H * d.W}).narrow(1, ha * d.W, (hb - ha) * d.W);
          if (need_hidden) {
            at::Tensor dst = gh.select(0, b).view({f.R, d.H * d.W}).narrow(1, ha * d.W, (hb - ha) * d.W);
            dst.addmm_(wrows.select(0, i).t(), gt);
          }
          if (need_weights) {
            gw_parts.select(0, t).select(0, i).addmm_(gt, hid.t());
            gb_parts.select(0, t).select(0, i).add_(gt.sum(1));
          }
        }
      });
  });
  at::Tensor gw = need_weights ? gw_parts.sum(0) : gw_parts;
  at::Tensor gb = need_weights ? gb_parts.sum(0) : gb_parts;
  return {gx, gh, gw, gb};
}
}  // namespace

TORCH_LIBRARY(demystify_localvit, m) {
  m.def("idynamic_forward(Tensor x, Tensor kernels, int rows) -> Tensor");
  m.def("idynamic_backward(Tensor grad_y, Tensor x, Tensor kernels, bool need_x, bool need_kernels, int rows) -> (Tensor, Tensor)");
  m.def("idynamic_fused_forward(Tensor x, Tensor hidden, Tensor wrows, Tensor brows, int rows) -> Tensor");
  m.def("idynamic_fused_backward(Tensor grad_y, Tensor x, Tensor hidden, Tensor wrows, Tensor brows, bool need_x, bool need_hidden, bool need_weights, int rows) -> (Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(demystify_localvit, CPU, m) {
  m.impl("idynamic_forward", &idynamic_forward);
  m.impl("idynamic_backward", &idynamic_backward);
  m.impl("idynamic_fused_forward", &idynamic_fused_forward);
  m.impl("idynamic_fused_backward", &idynamic_fused_backward);
}
