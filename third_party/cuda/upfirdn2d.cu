// upfirdn2d on CUDA GPUs: upsample by zero insertion, pad (negative crops), FIR-filter,
// downsample, computed on the input grid (no zero-inserted or padded image is formed).
//
// The specification is ganzoo.ops.upfirdn2d's reference. Per axis, output o reads the
// positions q = o * down + t - pad0 (t = 0 .. taps - 1) of the upsampled, padded signal;
// only those with q a multiple of up meet an input pixel j = q / up. So the first useful tap
// is t0 = (-(o * down - pad0)) mod up, then every up-th tap, each one input pixel further.
//
// Each block computes a tile of outputs (tw x th, powers of two) for `pb` planes at once
// (several small planes share a block): it copies the input pixels the tile reads into shared
// memory (zeros outside the image, so the inner loops need no bounds checks), then every
// thread computes outputs from there, always in the same column, so its phase along x is
// computed once. StyleGAN2's cases (the 4x4 filter with up 2, down 2 or neither) are compiled
// with that geometry fixed: no integer division by run-time factors in the loops (which made a
// first version instruction-bound at 200-560 GB/s on an H100), unrolled taps. The filter, oriented and scaled by the gain, sits in
// shared memory too. A 1-D (separable) filter arrives as its 2-D outer product. Inputs of any
// strides are read in place; the output has the input's memory format (contiguous NCHW or
// channels-last). The gradient of upfirdn2d is an upfirdn2d with up and down swapped (see
// ganzoo/ops/upfirdn2d.py), so this kernel serves every order of backward too.

#include "common.cuh"

#include <torch/library.h>

#include <ATen/ops/empty.h>
#include <ATen/ops/mul.h>

#include <algorithm>

namespace ganzoo {
namespace {

constexpr int kMaxOutputsPerBlock = 2048;   // 8 per thread
constexpr int kSharedBytes = 24 * 1024;     // per block: several blocks share a multiprocessor
constexpr int kMaxPlanesLog2 = 7;           // planes per block (their offsets sit in shared memory)
constexpr int kMaxTaps = 1024;              // filter entries (2-D)

__host__ __device__ inline int floor_div(int a, int b) {  // b > 0
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}
__host__ __device__ inline int ceil_div_i(int a, int b) { return -floor_div(-a, b); }

struct Geometry {
  int planes, C, H, W, OH, OW;
  int ux, uy, dx, dy, px0, py0;
  int fw, fh;
  int tw_log2, th_log2, pb_log2;  // tile width, height, planes per block (powers of two)
  int in_w, in_h;                 // the largest input tile (shared-memory pitch and rows)
  int tiles_x;
  int64_t sN, sC, sH, sW;         // input strides
  int64_t oN, oC, oH, oW;         // output strides
  bool flip;
  double gain;
};

// Input pixels [j0, j0 + n) that outputs [o0, o0 + t) read along one axis.
__host__ __device__ inline void input_span(int o0, int t, int down, int up, int pad0, int taps,
                                           int& j0, int& n) {
  j0 = ceil_div_i(o0 * down - pad0, up);
  const int j1 = floor_div((o0 + t - 1) * down + taps - 1 - pad0, up);
  n = j1 - j0 + 1;
}

// Where output o starts reading along one axis: its first useful tap (the phase) and that
// tap's input pixel relative to the tile's first input pixel j0.
__device__ __forceinline__ void first_tap(int o, int down, int up, int pad0, int j0, int& tap,
                                          int& local) {
  const int q = o * down - pad0;
  tap = ((-q) % up + up) % up;     // by a compile-time `up` this is a few bit operations
  local = (q + tap) / up - j0;     // exact: q + tap is a multiple of up
}

// UX..FH: compile-time geometry of the hot cases (0 = read it from g at run time). With them
// the phase arithmetic folds and the tap loops unroll; the general kernel has loops instead.
// (Keeping each column's taps in registers, one set per y phase, measured slower on an H100:
// 530-1,410 GB/s against this version's 650-1,820; the predicated phases doubled the work.)
template <typename scalar_t, int UX, int UY, int DX, int DY, int FW, int FH>
__global__ void __launch_bounds__(kThreads)
upfirdn2d_kernel(const scalar_t* __restrict__ x, const at::opmath_type<scalar_t>* __restrict__ f,
                 scalar_t* __restrict__ out, Geometry g) {
  using T = at::opmath_type<scalar_t>;
  const int ux = UX ? UX : g.ux, uy = UY ? UY : g.uy;
  const int dx = DX ? DX : g.dx, dy = DY ? DY : g.dy;
  const int fw = FW ? FW : g.fw, fh = FH ? FH : g.fh;
  const int tw = 1 << g.tw_log2, th = 1 << g.th_log2, pb = 1 << g.pb_log2;

  // Shared memory: the planes' input and output offsets, the filter, the input tiles.
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  int64_t* in_base = reinterpret_cast<int64_t*>(smem_bytes);
  int64_t* out_base = in_base + pb;
  T* w_s = reinterpret_cast<T*>(out_base + pb);
  const int taps = fw * fh;
  T* in_s = w_s + ((taps + 3) & ~3);
  const int tid = threadIdx.x;

  // The filter as a correlation: a true convolution reads it reversed.
  for (int i = tid; i < taps; i += kThreads) {
    const T v = g.flip ? f[i] : f[taps - 1 - i];
    w_s[i] = v * static_cast<T>(g.gain);
  }

  const int ox0 = (blockIdx.x % g.tiles_x) << g.tw_log2;
  const int oy0 = (blockIdx.x / g.tiles_x) << g.th_log2;
  int jx0, nx, jy0, ny;
  input_span(ox0, tw, dx, ux, g.px0, fw, jx0, nx);
  input_span(oy0, th, dy, uy, g.py0, fh, jy0, ny);
  const int tile_in = g.in_w * g.in_h;

  // Every thread keeps one output column (tw divides kThreads): its phase along x is fixed.
  const int ox = ox0 + (tid & (tw - 1));
  int sx, lx;
  first_tap(ox, dx, ux, g.px0, jx0, sx, lx);
  const int warp = tid >> 5, lane = tid & 31;

  for (int plane0 = blockIdx.y * pb; plane0 < g.planes; plane0 += gridDim.y * pb) {
    __syncthreads();  // the previous planes' reads of in_s are done (and w_s is written)
    if (tid < pb) {
      const int plane = min(plane0 + tid, g.planes - 1);
      const int n = plane / g.C, c = plane - n * g.C;
      in_base[tid] = n * g.sN + c * g.sC;
      out_base[tid] = n * g.oN + c * g.oC;
    }
    __syncthreads();
    // Copy the input tiles, a warp per row (coalesced along x in NCHW); zeros outside.
    for (int row = warp; row < pb * ny; row += kThreads / 32) {
      const int p = row / ny, iy = row - p * ny;
      const int gy = jy0 + iy;
      const bool row_in = plane0 + p < g.planes && gy >= 0 && gy < g.H;
      const scalar_t* src = x + in_base[p] + gy * g.sH;
      T* dst = in_s + p * tile_in + iy * g.in_w;
      for (int ix = lane; ix < nx; ix += 32) {
        const int gx = jx0 + ix;
        dst[ix] = row_in && gx >= 0 && gx < g.W ? static_cast<T>(src[gx * g.sW]) : T(0);
      }
    }
    __syncthreads();
    if (ox >= g.OW) continue;
    for (int r = tid >> g.tw_log2; r < pb << g.th_log2; r += kThreads >> g.tw_log2) {
      const int p = r >> g.th_log2, oy = oy0 + (r & (th - 1));
      if (plane0 + p >= g.planes || oy >= g.OH) continue;
      int sy, ly;
      first_tap(oy, dy, uy, g.py0, jy0, sy, ly);
      const T* src = in_s + p * tile_in + ly * g.in_w + lx;
      T acc = T(0);
      if constexpr (FW != 0 && FH != 0 && UX != 0 && UY != 0) {
        constexpr int KY = (FH + UY - 1) / UY, KX = (FW + UX - 1) / UX;
#pragma unroll
        for (int a = 0; a < KY; ++a) {
          const int ty = sy + a * UY;
          if (ty < FH) {
#pragma unroll
            for (int b = 0; b < KX; ++b) {
              const int tx = sx + b * UX;
              if (tx < FW) acc += src[a * g.in_w + b] * w_s[ty * FW + tx];
            }
          }
        }
      } else {
        for (int ty = sy; ty < fh; ty += uy, src += g.in_w) {
          const T* w_row = w_s + ty * fw;
          int jx = 0;
          for (int tx = sx; tx < fw; tx += ux, ++jx) acc += src[jx] * w_row[tx];
        }
      }
      out[out_base[p] + oy * g.oH + ox * g.oW] = static_cast<scalar_t>(acc);
    }
  }
}

int log2_ceil(int v) {
  int l = 0;
  while ((1 << l) < v) ++l;
  return l;
}

// Tile shape: up to 64 outputs wide, up to kMaxOutputsPerBlock per block (several planes when
// they are small), shrunk until the shared memory fits kSharedBytes.
size_t plan_tiles(Geometry& g, size_t elem) {
  g.tw_log2 = std::min(log2_ceil(g.OW), 6);
  g.th_log2 = std::min(log2_ceil(g.OH), log2_ceil(kMaxOutputsPerBlock) - g.tw_log2);
  g.pb_log2 = std::min({std::max(0, log2_ceil(kMaxOutputsPerBlock) - g.tw_log2 - g.th_log2),
                        log2_ceil(g.planes), kMaxPlanesLog2});
  const size_t taps_padded = (g.fw * g.fh + 3) & ~3;
  for (;;) {
    int j0, nx, ny;
    input_span(0, 1 << g.tw_log2, g.dx, g.ux, 0, g.fw, j0, nx);  // widest span over phases
    input_span(0, 1 << g.th_log2, g.dy, g.uy, 0, g.fh, j0, ny);
    g.in_w = nx + 1;
    g.in_h = ny + 1;
    const size_t pb = size_t(1) << g.pb_log2;
    const size_t smem = 2 * sizeof(int64_t) * pb +
                        elem * (taps_padded + size_t(g.in_w) * g.in_h * pb);
    if (smem <= kSharedBytes || (g.pb_log2 == 0 && g.th_log2 == 0 && g.tw_log2 == 0)) {
      TORCH_CHECK(smem <= 48 * 1024, "upfirdn2d (cuda): the filter is too large for the "
                  "kernel's shared memory; use impl='ref'");
      return smem;
    }
    if (g.pb_log2 > 0) --g.pb_log2;
    else if (g.th_log2 > 2) --g.th_log2;
    else if (g.tw_log2 > 5) --g.tw_log2;
    else if (g.th_log2 > 0) --g.th_log2;
    else --g.tw_log2;
  }
}

template <typename scalar_t>
void launch(const at::Tensor& x, const at::Tensor& f, const at::Tensor& out, Geometry& g) {
  using T = at::opmath_type<scalar_t>;
  const size_t smem = plan_tiles(g, sizeof(T));
  g.tiles_x = static_cast<int>(blocks_for(g.OW, int64_t(1) << g.tw_log2));
  const int64_t tiles = g.tiles_x * blocks_for(g.OH, int64_t(1) << g.th_log2);
  TORCH_CHECK(tiles < (int64_t(1) << 31), "upfirdn2d (cuda): output too large");
  const int64_t plane_blocks = blocks_for(g.planes, int64_t(1) << g.pb_log2);
  const dim3 grid(static_cast<unsigned>(tiles),
                  static_cast<unsigned>(std::min<int64_t>(plane_blocks, 65535)));
  const scalar_t* xp = x.const_data_ptr<scalar_t>();
  const T* fp = f.const_data_ptr<T>();
  scalar_t* op = out.data_ptr<scalar_t>();
  auto stream = current_stream();
  const bool four = g.fw == 4 && g.fh == 4;   // StyleGAN2's [1, 3, 3, 1] filter
  const int u = g.ux == g.uy ? g.ux : 0, d = g.dx == g.dy ? g.dx : 0;
  if (four && u == 2 && d == 1)
    upfirdn2d_kernel<scalar_t, 2, 2, 1, 1, 4, 4><<<grid, kThreads, smem, stream>>>(xp, fp, op, g);
  else if (four && u == 1 && d == 2)
    upfirdn2d_kernel<scalar_t, 1, 1, 2, 2, 4, 4><<<grid, kThreads, smem, stream>>>(xp, fp, op, g);
  else if (four && u == 1 && d == 1)
    upfirdn2d_kernel<scalar_t, 1, 1, 1, 1, 4, 4><<<grid, kThreads, smem, stream>>>(xp, fp, op, g);
  else
    upfirdn2d_kernel<scalar_t, 0, 0, 0, 0, 0, 0><<<grid, kThreads, smem, stream>>>(xp, fp, op, g);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

at::Tensor upfirdn2d(const at::Tensor& x, const at::Tensor& f_in, at::IntArrayRef up,
                     at::IntArrayRef down, at::IntArrayRef pad, bool flip, double gain) {
  TORCH_CHECK(x.is_cuda(), "upfirdn2d (cuda): expected a CUDA tensor");
  TORCH_CHECK(x.dim() == 4, "upfirdn2d: expected x of shape [N, C, H, W], got ", x.sizes());
  TORCH_CHECK(f_in.dim() == 1 || f_in.dim() == 2, "upfirdn2d: filter must be 1-D or 2-D");
  TORCH_CHECK(f_in.numel() > 0, "upfirdn2d: empty filter");
  TORCH_CHECK(up.size() == 2 && down.size() == 2 && pad.size() == 4,
              "upfirdn2d: up and down take (x, y), pad (x0, x1, y0, y1)");
  TORCH_CHECK(up[0] >= 1 && up[1] >= 1 && down[0] >= 1 && down[1] >= 1,
              "upfirdn2d: up and down must be >= 1");
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t fh = f_in.size(0), fw = f_in.dim() == 1 ? f_in.size(0) : f_in.size(1);
  TORCH_CHECK(fw * fh <= kMaxTaps, "upfirdn2d (cuda): at most ", kMaxTaps,
              " filter taps (2-D), got ", fw * fh, "; use impl='ref'");
  const int64_t padded_w = W * up[0] + pad[0] + pad[1], padded_h = H * up[1] + pad[2] + pad[3];
  TORCH_CHECK(padded_w >= fw && padded_h >= fh, "upfirdn2d: padded image [", padded_h, ", ",
              padded_w, "] is smaller than the filter [", fh, ", ", fw, "]");
  const int64_t OW = (padded_w - fw) / down[0] + 1, OH = (padded_h - fh) / down[1] + 1;
  TORCH_CHECK(N * C < (int64_t(1) << 31) && std::max({H, W, OH, OW}) < (1 << 20),
              "upfirdn2d (cuda): tensor too large");
  const bool channels_last = !x.is_contiguous() &&
                             x.is_contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor out = at::empty({N, C, OH, OW}, x.options().memory_format(
      channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;

  // Taps rounded to x's dtype first (the reference filters with f.to(x.dtype)), computed in
  // the op-math type; a 1-D filter becomes its outer product.
  const auto op_type = at::toOpMathType(x.scalar_type());
  at::Tensor f = f_in.to(x.device()).to(x.scalar_type()).to(op_type);
  if (f.dim() == 1) f = at::mul(f.unsqueeze(1), f.unsqueeze(0));
  f = f.contiguous();

  Geometry g{};
  g.planes = static_cast<int>(N * C);
  g.C = static_cast<int>(C);
  g.H = static_cast<int>(H);
  g.W = static_cast<int>(W);
  g.OH = static_cast<int>(OH);
  g.OW = static_cast<int>(OW);
  g.ux = static_cast<int>(up[0]);
  g.uy = static_cast<int>(up[1]);
  g.dx = static_cast<int>(down[0]);
  g.dy = static_cast<int>(down[1]);
  g.px0 = static_cast<int>(pad[0]);
  g.py0 = static_cast<int>(pad[2]);
  g.fw = static_cast<int>(fw);
  g.fh = static_cast<int>(fh);
  g.sN = x.stride(0), g.sC = x.stride(1), g.sH = x.stride(2), g.sW = x.stride(3);
  g.oN = out.stride(0), g.oC = out.stride(1), g.oH = out.stride(2), g.oW = out.stride(3);
  g.flip = flip;
  g.gain = gain;

  GANZOO_DISPATCH_FLOATS(x.scalar_type(), "ganzoo_upfirdn2d_cuda",
                         [&] { launch<scalar_t>(x, f, out, g); });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(ganzoo_cuda, m) {
  m.def("upfirdn2d(Tensor x, Tensor f, int[] up, int[] down, int[] pad, bool flip, "
        "float gain) -> Tensor");
}

TORCH_LIBRARY_IMPL(ganzoo_cuda, CUDA, m) {
  m.impl("upfirdn2d", &upfirdn2d);
}

}  // namespace ganzoo
