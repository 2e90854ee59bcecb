// upfirdn2d on the CPU: upsample by zero insertion, pad (negative crops), FIR-filter, downsample,
// computed directly on the input grid: no zero-inserted or padded image is ever formed, and
// only the taps that meet a real (non-inserted, in-range) input pixel are multiplied.
//
// The specification is ganzoo.ops.upfirdn2d's reference implementation. Per axis, with
// q(o, t) = o * down + t - pad0 the position (on the upsampled grid) that tap t of output o
// reads, an input pixel j = q / up contributes when q is a multiple of up and 0 <= j < in.
// For a fixed tap those outputs form an arithmetic progression o0, o0 + so, ... reading
// j0, j0 + sj, ... (so = up / g, sj = down / g, g = gcd(up, down)), so a row is filtered by
// one strided multiply-add per tap.
//
// Layouts: NCHW with a 2-D filter runs run_planes (polyphase over whole planes); otherwise rows
// are filtered (run), in NCHW a pixel being one value, in channels-last (NHWC) the C channel
// values, contiguous in memory. The output keeps the input's memory format. The gradient of
// upfirdn2d is an upfirdn2d with the roles of up and down swapped (see
// ganzoo/ops/upfirdn2d.py), so this one kernel serves the forward pass and every order of
// backward.

#include "common.h"

#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <numeric>
#include <vector>

namespace ganzoo {
namespace {

inline int64_t floor_div(int64_t a, int64_t b) {  // b > 0
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}
inline int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

struct Axis {
  int64_t in, up, down, pad0, pad1, taps, out;
};

Axis make_axis(const char* name, int64_t in, int64_t up, int64_t down, int64_t pad0,
               int64_t pad1, int64_t taps) {
  TORCH_CHECK(up >= 1 && down >= 1, "upfirdn2d: up and down must be >= 1");
  const int64_t padded = in * up + pad0 + pad1;
  TORCH_CHECK(padded >= taps, "upfirdn2d: padded image ", name, " size ", padded,
              " is smaller than the filter (", taps, " taps)");
  return Axis{in, up, down, pad0, pad1, taps, ceil_div(padded - taps + 1, down)};
}

// Tap t touches outputs o0 + k * so reading inputs j0 + k * sj, k in [0, count); `a0` is
// where output o0 sits in the row accumulator.
struct Run {
  int64_t o0 = 0, j0 = 0, count = 0, a0 = 0;
};

// The accumulator of one output row. With one value per pixel (NCHW) and so > 1 (upsampling)
// it is phase-major: output o at (o % so) * nk + o / so, so each tap's run is contiguous and
// vectorises; the phases are interleaved once, when the row is written. Otherwise it is the
// row itself (pixels of V values, a run strided by so pixels).
struct Plan {
  int64_t so = 1, sj = 1, V = 1, out = 0;
  bool phase_major = false;
  int64_t nk = 0, acc_len = 0;
  std::vector<Run> runs;  // one per tap
};

Plan plan_axis(const Axis& a, int64_t V) {
  Plan plan;
  const int64_t g = std::gcd(a.up, a.down);
  plan.so = a.up / g;
  plan.sj = a.down / g;
  plan.V = V;
  plan.out = a.out;
  plan.phase_major = V == 1 && plan.so > 1;
  plan.nk = ceil_div(a.out, plan.so);
  plan.acc_len = plan.phase_major ? plan.so * plan.nk : a.out * V;
  plan.runs.resize(a.taps);
  for (int64_t t = 0; t < a.taps; ++t) {
    int64_t o0 = -1;
    for (int64_t o = 0; o < plan.so; ++o) {  // q(o) mod up repeats with period so
      if ((((o * a.down + t - a.pad0) % a.up) + a.up) % a.up == 0) {
        o0 = o;
        break;
      }
    }
    if (o0 < 0) continue;  // this tap only ever meets inserted zeros
    const int64_t j0 = (o0 * a.down + t - a.pad0) / a.up;  // exact, may be negative
    const int64_t kmin = std::max<int64_t>(0, ceil_div(-j0, plan.sj));
    const int64_t kmax = std::min(ceil_div(a.in - j0, plan.sj), ceil_div(a.out - o0, plan.so));
    if (kmax <= kmin) continue;
    Run r{o0 + kmin * plan.so, j0 + kmin * plan.sj, kmax - kmin, 0};
    r.a0 = plan.phase_major ? (r.o0 % plan.so) * plan.nk + r.o0 / plan.so : r.o0 * V;
    plan.runs[t] = r;
  }
  return plan;
}

// acc[o] += w[t] * in[j] over every tap's run.
template <typename scalar_t, typename T>
void filter_row(T* acc, const scalar_t* in, const Plan& plan, const T* w) {
  const int64_t so = plan.so, sj = plan.sj, V = plan.V;
  for (size_t t = 0; t < plan.runs.size(); ++t) {
    const Run& r = plan.runs[t];
    if (r.count == 0) continue;
    const T wt = w[t];
    // The accumulator is scratch memory, never the input: no aliasing checks in the loops.
    T* __restrict__ o = acc + r.a0;
    const scalar_t* __restrict__ i = in + r.j0 * V;
    const int64_t n = r.count;
    if (V == 1) {  // contiguous in acc (phase-major or so == 1)
      if (sj == 1) {
        for (int64_t k = 0; k < n; ++k) o[k] += wt * static_cast<T>(i[k]);
      } else if (sj == 2) {
        for (int64_t k = 0; k < n; ++k) o[k] += wt * static_cast<T>(i[2 * k]);
      } else {
        for (int64_t k = 0; k < n; ++k) o[k] += wt * static_cast<T>(i[k * sj]);
      }
    } else {
      for (int64_t k = 0; k < n; ++k) {
        T* ok = o + k * so * V;
        const scalar_t* ik = i + k * sj * V;
        for (int64_t v = 0; v < V; ++v) ok[v] += wt * static_cast<T>(ik[v]);
      }
    }
  }
}

// The finished accumulator into the output row (interleaving the phases if phase-major).
template <typename scalar_t, typename T>
void write_row(scalar_t* dst, const T* acc, const Plan& plan) {
  if (!plan.phase_major) {
    for (int64_t e = 0; e < plan.acc_len; ++e) dst[e] = static_cast<scalar_t>(acc[e]);
    return;
  }
  for (int64_t phase = 0; phase < plan.so; ++phase) {
    const T* src = acc + phase * plan.nk;
    for (int64_t k = 0, o = phase; o < plan.out; ++k, o += plan.so)
      dst[o] = static_cast<scalar_t>(src[k]);
  }
}

// NCHW with a 2-D filter: polyphase over whole planes. Output o = so * m + phi and input
// j = sj * n + psi; along a tap's run both phases are fixed and n - m is a constant delta, so
// in phase coordinates every tap is a unit-stride correlation of one input phase plane with one
// output phase plane. With both stored zero-padded at a common row pitch P, a tap is one
// contiguous multiply-add over the whole output phase plane (reads outside the image hit the
// padding), which vectorises fully instead of running short loops per row.
struct PhaseAxis {
  int64_t so = 1, sj = 1;
  int64_t m_len = 0;         // output phase length (the longest phase)
  int64_t lo = 0, pitch = 0; // input phase index range [lo, lo + pitch) kept in the buffers
  std::vector<int64_t> phi, psi, delta;  // per tap; phi < 0: the tap never contributes
};

PhaseAxis phase_axis(const Axis& a) {
  const Plan plan = plan_axis(a, 1);
  PhaseAxis p;
  p.so = plan.so;
  p.sj = plan.sj;
  p.m_len = ceil_div(a.out, p.so);
  const int64_t n_len = ceil_div(a.in, p.sj);
  int64_t lo = 0, hi = n_len - 1;
  p.phi.assign(a.taps, -1);
  p.psi.assign(a.taps, 0);
  p.delta.assign(a.taps, 0);
  for (int64_t t = 0; t < a.taps; ++t) {
    const Run& r = plan.runs[t];
    if (r.count == 0) continue;
    p.phi[t] = r.o0 % p.so;
    p.psi[t] = r.j0 % p.sj;
    p.delta[t] = r.j0 / p.sj - r.o0 / p.so;
    lo = std::min(lo, p.delta[t]);
    hi = std::max(hi, p.m_len - 1 + p.delta[t]);
  }
  p.lo = lo;
  p.pitch = std::max(hi - lo + 1, p.m_len);  // the output phase rows share the pitch
  return p;
}

template <typename scalar_t>
void run_planes(const at::Tensor& x, const at::Tensor& out, const std::vector<double>& f,
                const Axis& ax, const Axis& ay, bool flip, double gain, int64_t planes) {
  using T = at::opmath_type<scalar_t>;
  const PhaseAxis px = phase_axis(ax), py = phase_axis(ay);
  const int64_t fw = ax.taps, fh = ay.taps, W = ax.in, H = ay.in;
  const int64_t P = px.pitch, rows = py.pitch;
  const int64_t in_plane = rows * P;             // one input phase plane, padded
  const int64_t acc_plane = py.m_len * P;        // one output phase plane at pitch P
  const int64_t n_in = py.sj * px.sj, n_out = py.so * px.so;
  const int64_t span = (py.m_len - 1) * P + px.m_len;  // elements a tap updates
  struct Tap { T w; int64_t out_off, in_off; };
  std::vector<Tap> taps;
  for (int64_t a = 0; a < fh; ++a) {
    if (py.phi[a] < 0) continue;
    for (int64_t b = 0; b < fw; ++b) {
      if (px.phi[b] < 0) continue;
      const double tap = f[flip ? a * fw + b : (fh - 1 - a) * fw + (fw - 1 - b)] * gain;
      const int64_t phase_out = py.phi[a] * px.so + px.phi[b];
      const int64_t phase_in = py.psi[a] * px.sj + px.psi[b];
      taps.push_back({static_cast<T>(tap), phase_out * acc_plane,
                      phase_in * in_plane + (py.delta[a] - py.lo) * P + (px.delta[b] - px.lo)});
    }
  }
  const scalar_t* xp = x.const_data_ptr<scalar_t>();
  scalar_t* op = out.data_ptr<scalar_t>();
  const int64_t cost = std::max<int64_t>(1, static_cast<int64_t>(taps.size()) * span);
  at::parallel_for(0, planes, std::max<int64_t>(1, kGrain / cost), [&](int64_t begin, int64_t end) {
    std::vector<T> in_buf(n_in * in_plane), acc(n_out * acc_plane);
    for (int64_t plane = begin; plane < end; ++plane) {
      // Input phase planes: sample (sj * n + psi) at row n - lo, zeros around.
      std::fill(in_buf.begin(), in_buf.end(), T(0));
      const scalar_t* src = xp + plane * H * W;
      for (int64_t iy = 0; iy < H; ++iy) {
        const int64_t ny = iy / py.sj - py.lo;
        T* row_base = in_buf.data() + (iy % py.sj) * px.sj * in_plane + ny * P - px.lo;
        const scalar_t* s = src + iy * W;
        if (px.sj == 1) {
          for (int64_t ix = 0; ix < W; ++ix) row_base[ix] = static_cast<T>(s[ix]);
        } else {
          for (int64_t psi = 0; psi < px.sj; ++psi) {
            T* d = row_base + psi * in_plane;
            for (int64_t n = 0, ix = psi; ix < W; ++n, ix += px.sj) d[n] = static_cast<T>(s[ix]);
          }
        }
      }
      std::fill(acc.begin(), acc.end(), T(0));
      for (const Tap& tap : taps) {
        T* __restrict__ o = acc.data() + tap.out_off;
        const T* __restrict__ i = in_buf.data() + tap.in_off;
        const T w = tap.w;
        for (int64_t e = 0; e < span; ++e) o[e] += w * i[e];
      }
      // Interleave the output phases into the plane.
      scalar_t* dst = op + plane * ay.out * ax.out;
      for (int64_t phy = 0; phy < py.so; ++phy) {
        if (px.so == 2) {  // x2 upsampling: both phases of a row in one (vectorisable) loop
          const T* a0 = acc.data() + phy * 2 * acc_plane;
          const T* a1 = a0 + acc_plane;
          for (int64_t my = 0, oy = phy; oy < ay.out; ++my, oy += py.so) {
            scalar_t* drow = dst + oy * ax.out;
            const T* r0 = a0 + my * P;
            const T* r1 = a1 + my * P;
            const int64_t pairs = ax.out / 2;
            for (int64_t m = 0; m < pairs; ++m) {
              drow[2 * m] = static_cast<scalar_t>(r0[m]);
              drow[2 * m + 1] = static_cast<scalar_t>(r1[m]);
            }
            if (ax.out % 2) drow[ax.out - 1] = static_cast<scalar_t>(r0[pairs]);
          }
          continue;
        }
        for (int64_t phx = 0; phx < px.so; ++phx) {
          const T* a = acc.data() + (phy * px.so + phx) * acc_plane;
          for (int64_t my = 0, oy = phy; oy < ay.out; ++my, oy += py.so) {
            scalar_t* drow = dst + oy * ax.out;
            const T* arow = a + my * P;
            if (px.so == 1) {
              for (int64_t ox = 0; ox < ax.out; ++ox) drow[ox] = static_cast<scalar_t>(arow[ox]);
            } else {
              for (int64_t mx = 0, ox = phx; ox < ax.out; ++mx, ox += px.so)
                drow[ox] = static_cast<scalar_t>(arow[mx]);
            }
          }
        }
      }
    }
  });
}

// Row by row: channels-last, and separable filters (x pass into `inter`, then y pass).
template <typename scalar_t>
void run(const at::Tensor& x, const at::Tensor& out, const std::vector<double>& f, bool sep,
         const Axis& ax, const Axis& ay, bool flip, double gain, int64_t images, int64_t V) {
  using T = at::opmath_type<scalar_t>;
  const Plan px = plan_axis(ax, V);
  // Taps in position order: out[o] = sum_t padded[o * down + t] * tap[t]; a true convolution
  // (flip == false) reads the filter backwards.
  const int64_t fw = ax.taps, fh = ay.taps;
  std::vector<T> wx, wy, w2;
  if (sep) {
    wx.resize(fw);
    wy.resize(fh);
    for (int64_t t = 0; t < fw; ++t) wx[t] = static_cast<T>(f[flip ? t : fw - 1 - t] * gain);
    for (int64_t t = 0; t < fh; ++t) wy[t] = static_cast<T>(f[flip ? t : fh - 1 - t]);
  } else {
    w2.resize(fh * fw);
    for (int64_t a = 0; a < fh; ++a)
      for (int64_t b = 0; b < fw; ++b)
        w2[a * fw + b] = static_cast<T>(
            f[flip ? a * fw + b : (fh - 1 - a) * fw + (fw - 1 - b)] * gain);
  }
  const int64_t H = ay.in, W = ax.in;
  const int64_t in_row = W * V, in_img = H * in_row;
  const int64_t out_row = ax.out * V, out_img = ay.out * out_row;
  const int64_t acc_len = px.acc_len;
  const scalar_t* xp = x.const_data_ptr<scalar_t>();
  scalar_t* op = out.data_ptr<scalar_t>();

  // Separable: first every input row filtered along x (on the output's x grid), then columns.
  std::vector<T> inter;
  if (sep) {
    inter.resize(static_cast<size_t>(images * H * acc_len));
    const int64_t cost = std::max<int64_t>(1, out_row * ceil_div(fw, ax.up));
    at::parallel_for(0, images * H, std::max<int64_t>(1, kGrain / cost),
                     [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        T* acc = inter.data() + r * acc_len;
        std::fill(acc, acc + acc_len, T(0));
        filter_row(acc, xp + r * in_row, px, wx.data());
      }
    });
  }

  const int64_t cost = std::max<int64_t>(
      1, out_row * ceil_div(fh, ay.up) * (sep ? 1 : ceil_div(fw, ax.up)));
  at::parallel_for(0, images * ay.out, std::max<int64_t>(1, kGrain / cost),
                   [&](int64_t begin, int64_t end) {
    std::vector<T> acc(acc_len);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t img = r / ay.out, oy = r % ay.out;
      std::fill(acc.begin(), acc.end(), T(0));
      for (int64_t a = 0; a < fh; ++a) {
        const int64_t q = oy * ay.down + a - ay.pad0;
        if (q < 0 || q % ay.up != 0 || q / ay.up >= H) continue;
        const int64_t iy = q / ay.up;
        if (sep) {
          const T* __restrict__ src = inter.data() + (img * H + iy) * acc_len;
          T* __restrict__ dst = acc.data();
          const T wa = wy[a];
          for (int64_t e = 0; e < acc_len; ++e) dst[e] += wa * src[e];
        } else {
          filter_row(acc.data(), xp + img * in_img + iy * in_row, px, w2.data() + a * fw);
        }
      }
      write_row(op + img * out_img + oy * out_row, acc.data(), px);
    }
  });
}

at::Tensor upfirdn2d(const at::Tensor& x_in, const at::Tensor& f_in, at::IntArrayRef up,
                     at::IntArrayRef down, at::IntArrayRef pad, bool flip, double gain) {
  TORCH_CHECK(x_in.device().is_cpu(), "upfirdn2d (cpp): expected a CPU tensor");
  TORCH_CHECK(x_in.dim() == 4, "upfirdn2d: expected x of shape [N, C, H, W], got ",
              x_in.sizes());
  TORCH_CHECK(f_in.dim() == 1 || f_in.dim() == 2, "upfirdn2d: filter must be 1-D or 2-D");
  TORCH_CHECK(up.size() == 2 && down.size() == 2 && pad.size() == 4,
              "upfirdn2d: up and down take (x, y), pad (x0, x1, y0, y1)");
  TORCH_CHECK(f_in.numel() > 0, "upfirdn2d: empty filter");

  // NCHW plane by plane, or channels-last image by image; other layouts made contiguous.
  bool channels_last = false;
  at::Tensor x = x_in;
  if (!x.is_contiguous()) {
    if (x.is_contiguous(at::MemoryFormat::ChannelsLast)) channels_last = true;
    else x = x.contiguous();
  }
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const bool sep = f_in.dim() == 1;
  const int64_t fh = f_in.size(0), fw = sep ? f_in.size(0) : f_in.size(1);
  const Axis ax = make_axis("width", W, up[0], down[0], pad[0], pad[1], fw);
  const Axis ay = make_axis("height", H, up[1], down[1], pad[2], pad[3], fh);
  at::Tensor out = at::empty(
      {N, C, ay.out, ax.out},
      x.options().memory_format(channels_last ? at::MemoryFormat::ChannelsLast
                                              : at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;

  // Taps as x's dtype first (the reference filters with f.to(x.dtype)), then to double.
  at::Tensor fd = f_in.to(x.scalar_type()).to(at::kDouble).contiguous();
  std::vector<double> f(fd.const_data_ptr<double>(), fd.const_data_ptr<double>() + fd.numel());
  const int64_t images = channels_last ? N : N * C, V = channels_last ? C : 1;
  GANZOO_DISPATCH_FLOATS(x.scalar_type(), "ganzoo_upfirdn2d", [&] {
    if (V == 1 && !sep) run_planes<scalar_t>(x, out, f, ax, ay, flip, gain, images);
    else run<scalar_t>(x, out, f, sep, ax, ay, flip, gain, images, V);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(ganzoo_cpu, m) {
  m.def("upfirdn2d(Tensor x, Tensor f, int[] up, int[] down, int[] pad, bool flip, "
        "float gain) -> Tensor");
}

TORCH_LIBRARY_IMPL(ganzoo_cpu, CPU, m) {
  m.impl("upfirdn2d", &upfirdn2d);
}

}  // namespace ganzoo
