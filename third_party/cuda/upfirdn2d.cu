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
//
// Channels-last inputs of those StyleGAN2 geometries run a second kernel (upfirdn2d_nhwc_kernel,
// below) that reads and writes NHWC directly: each thread computes a 2 x 2 tile of output
// pixels for 8 (fp16/bf16), 4 (fp32) or 2 (fp64) adjacent channels from registers, with 16-byte
// loads and stores (2 channels, a half2, when C is only even; 1 when it is odd).

#include "common.cuh"

#include <torch/library.h>

#include <ATen/ops/empty.h>
#include <ATen/ops/mul.h>

#include <algorithm>
#include <type_traits>

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

// -- Channels-last (NHWC) ---------------------------------------------------------------------
//
// A channels-last input of StyleGAN2's geometries (the 4x4 filter with up 2, down 2 or neither,
// the same on both axes; any padding) runs this kernel instead: the kernel above would read and
// write NHWC one channel per lane, C values apart. Here a thread owns VEC adjacent channels
// (one 16-byte access: 8 halves or 4 floats; 2 values, e.g. a half2, when C is not a multiple
// of that; 1 when C is odd or the data is misaligned) of a P x P tile of output pixels. It
// reads each input pixel of the tile's window once into registers, adds it into every output
// of the tile that it meets, and writes the tile; the threads of a warp hold adjacent channel
// groups, so every load and store covers contiguous memory. No shared memory but the filter.
//
// Tiles start where the first output's first tap meets an input pixel (phase 0): per axis,
// tile origin o0 = tile * P - shift with o0 * D - pad0 a multiple of U (P is a multiple of U,
// and up and down are not both > 1 here). Then, with J = (o0 * D - pad0) / U the first input
// pixel, output o0 + k reads input J + i through tap t = i * U - k * D (when 0 <= t < F), all
// compile-time numbers: the loops unroll into straight multiply-adds on registers. The taps of
// an output are added in the same order as the NCHW kernel adds them (rows, then columns).

struct NhwcGeometry {
  int N, C, H, W, OH, OW;
  int px0, py0;               // padding before, x and y
  int shift_x, shift_y;       // tile origins: tile * P - shift (phase 0, see above)
  int tiles_x, tiles_y;
  int groups;                 // channel groups of VEC values: C / VEC
  bool flip;
  double gain;
};

// A pack of VEC values to and from the op-math type. Halves go two at a time through __half2:
// one conversion instruction per pair, exactly the rounding of one value at a time.
template <typename scalar_t, int VEC>
__device__ __forceinline__ void unpack(const Pack<scalar_t, VEC>& p,
                                       at::opmath_type<scalar_t>* v) {
  if constexpr (std::is_same_v<scalar_t, c10::Half> && VEC % 2 == 0) {
    const __half2* h = reinterpret_cast<const __half2*>(p.v);
#pragma unroll
    for (int k = 0; k < VEC / 2; ++k) {
      const float2 f2 = __half22float2(h[k]);
      v[2 * k] = f2.x;
      v[2 * k + 1] = f2.y;
    }
  } else {
#pragma unroll
    for (int e = 0; e < VEC; ++e) v[e] = static_cast<at::opmath_type<scalar_t>>(p.v[e]);
  }
}

template <typename scalar_t, int VEC>
__device__ __forceinline__ void pack(const at::opmath_type<scalar_t>* v,
                                     Pack<scalar_t, VEC>& p) {
  if constexpr (std::is_same_v<scalar_t, c10::Half> && VEC % 2 == 0) {
    __half2* h = reinterpret_cast<__half2*>(p.v);
#pragma unroll
    for (int k = 0; k < VEC / 2; ++k) h[k] = __floats2half2_rn(v[2 * k], v[2 * k + 1]);
  } else {
#pragma unroll
    for (int e = 0; e < VEC; ++e) p.v[e] = static_cast<scalar_t>(v[e]);
  }
}

template <typename scalar_t, int VEC, int U, int D, int F, int P>
__global__ void __launch_bounds__(kThreads)
upfirdn2d_nhwc_kernel(const scalar_t* __restrict__ x,
                      const at::opmath_type<scalar_t>* __restrict__ f,
                      scalar_t* __restrict__ out, NhwcGeometry g) {
  using T = at::opmath_type<scalar_t>;
  using V = Pack<scalar_t, VEC>;
  static_assert(P % U == 0 && (U == 1 || D == 1), "tile origins must all be phase 0");
  constexpr int kInputs = ((P - 1) * D + F - 1) / U + 1;   // input pixels per tile, per axis

  // The filter as a correlation (as in the NCHW kernel), scaled by the gain.
  __shared__ T w_s[F * F];
  const int tid = threadIdx.x;
  if (tid < F * F) w_s[tid] = (g.flip ? f[tid] : f[F * F - 1 - tid]) * static_cast<T>(g.gain);
  __syncthreads();
  T w[F][F];
#pragma unroll
  for (int i = 0; i < F; ++i) {
#pragma unroll
    for (int j = 0; j < F; ++j) w[i][j] = w_s[i * F + j];
  }

  // blockIdx.x and the thread: (tile column, channel group), channel groups fastest.
  const int item = blockIdx.x * kThreads + tid;
  if (item >= g.tiles_x * g.groups) return;   // no barrier below
  const int tile_x = item / g.groups;
  const int64_t c0 = int64_t(item - tile_x * g.groups) * VEC;
  const int ox0 = tile_x * P - g.shift_x;
  const int jx0 = (ox0 * D - g.px0) / U;      // exact: a multiple of U

  for (int n = blockIdx.z; n < g.N; n += gridDim.z) {
    for (int tile_y = blockIdx.y; tile_y < g.tiles_y; tile_y += gridDim.y) {
      const int oy0 = tile_y * P - g.shift_y;
      const int jy0 = (oy0 * D - g.py0) / U;
      T acc[P][P][VEC];
#pragma unroll
      for (int ky = 0; ky < P; ++ky) {
#pragma unroll
        for (int kx = 0; kx < P; ++kx) {
#pragma unroll
          for (int e = 0; e < VEC; ++e) acc[ky][kx][e] = T(0);
        }
      }
#pragma unroll
      for (int i = 0; i < kInputs; ++i) {
        const int iy = jy0 + i;
        const bool row_in = iy >= 0 && iy < g.H;
        const int64_t row = (int64_t(n) * g.H + iy) * g.W * g.C + c0;   // read only if row_in
#pragma unroll
        for (int j = 0; j < kInputs; ++j) {
          const int ix = jx0 + j;
          T v[VEC];
          if (row_in && ix >= 0 && ix < g.W) {
            const V p = *reinterpret_cast<const V*>(x + row + int64_t(ix) * g.C);  // one load
            unpack<scalar_t, VEC>(p, v);
          } else {
#pragma unroll
            for (int e = 0; e < VEC; ++e) v[e] = T(0);
          }
#pragma unroll
          for (int ky = 0; ky < P; ++ky) {
            const int ty = i * U - ky * D;       // compile-time after unrolling
            if (ty >= 0 && ty < F) {
#pragma unroll
              for (int kx = 0; kx < P; ++kx) {
                const int tx = j * U - kx * D;
                if (tx >= 0 && tx < F) {
#pragma unroll
                  for (int e = 0; e < VEC; ++e) acc[ky][kx][e] += v[e] * w[ty][tx];
                }
              }
            }
          }
        }
      }
#pragma unroll
      for (int ky = 0; ky < P; ++ky) {
        const int oy = oy0 + ky;
        if (oy < 0 || oy >= g.OH) continue;
        scalar_t* orow = out + (int64_t(n) * g.OH + oy) * g.OW * g.C + c0;
#pragma unroll
        for (int kx = 0; kx < P; ++kx) {
          const int ox = ox0 + kx;
          if (ox < 0 || ox >= g.OW) continue;
          V p;
          pack<scalar_t, VEC>(acc[ky][kx], p);
          *reinterpret_cast<V*>(orow + int64_t(ox) * g.C) = p;
        }
      }
    }
  }
}

constexpr int kNhwcTile = 2;   // P: 2 x 2 output pixels per thread

template <typename scalar_t, int VEC, int U, int D>
void launch_nhwc_geometry(const scalar_t* xp, const at::opmath_type<scalar_t>* fp,
                          scalar_t* op, NhwcGeometry g) {
  constexpr int P = kNhwcTile;
  auto phase_shift = [](int pad0) { return ((-pad0) % U + U) % U; };   // 0 when U == 1
  g.shift_x = phase_shift(g.px0);
  g.shift_y = phase_shift(g.py0);
  g.tiles_x = static_cast<int>(blocks_for(int64_t(g.OW) + g.shift_x, P));
  g.tiles_y = static_cast<int>(blocks_for(int64_t(g.OH) + g.shift_y, P));
  const int64_t items = int64_t(g.tiles_x) * g.groups;   // checked < 2^31 by the caller
  const dim3 grid(static_cast<unsigned>(blocks_for(items, kThreads)),
                  static_cast<unsigned>(std::min(g.tiles_y, 65535)),
                  static_cast<unsigned>(std::min(g.N, 65535)));
  upfirdn2d_nhwc_kernel<scalar_t, VEC, U, D, 4, P><<<grid, kThreads, 0, current_stream()>>>(
      xp, fp, op, g);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename scalar_t, int VEC>
void launch_nhwc_vec(const scalar_t* xp, const at::opmath_type<scalar_t>* fp, scalar_t* op,
                     const NhwcGeometry& g, int up, int down) {
  if (up == 2) launch_nhwc_geometry<scalar_t, VEC, 2, 1>(xp, fp, op, g);
  else if (down == 2) launch_nhwc_geometry<scalar_t, VEC, 1, 2>(xp, fp, op, g);
  else launch_nhwc_geometry<scalar_t, VEC, 1, 1>(xp, fp, op, g);
}

// The geometries the NHWC kernel takes: the 4x4 filter, up 2 / down 2 / neither on both axes.
bool nhwc_geometry(const Geometry& g) {
  const bool same = g.ux == g.uy && g.dx == g.dy;
  return same && g.fw == 4 && g.fh == 4 &&
         ((g.ux == 2 && g.dx == 1) || (g.ux == 1 && g.dx == 2) || (g.ux == 1 && g.dx == 1));
}

// Channels-last x (contiguous in that format) and out, a geometry of nhwc_geometry.
template <typename scalar_t>
void launch_nhwc(const at::Tensor& x, const at::Tensor& f, const at::Tensor& out,
                 const Geometry& geo) {
  NhwcGeometry g{};
  g.N = static_cast<int>(x.size(0));
  g.C = geo.C;
  g.H = geo.H;
  g.W = geo.W;
  g.OH = geo.OH;
  g.OW = geo.OW;
  g.px0 = geo.px0;
  g.py0 = geo.py0;
  g.flip = geo.flip;
  g.gain = geo.gain;
  const scalar_t* xp = x.const_data_ptr<scalar_t>();
  const auto* fp = f.const_data_ptr<at::opmath_type<scalar_t>>();
  scalar_t* op = out.data_ptr<scalar_t>();
  constexpr int kWide = 16 / sizeof(scalar_t);   // 8 halves, 4 floats, 2 doubles: 16 bytes
  const auto fits = [&](int vec) {
    const size_t bytes = vec * sizeof(scalar_t);
    return g.C % vec == 0 && aligned(xp, bytes) && aligned(op, bytes);
  };
  if (fits(kWide)) {
    g.groups = g.C / kWide;
    launch_nhwc_vec<scalar_t, kWide>(xp, fp, op, g, geo.ux, geo.dx);
  } else if (kWide > 2 && fits(2)) {
    g.groups = g.C / 2;
    launch_nhwc_vec<scalar_t, (kWide > 2 ? 2 : 1)>(xp, fp, op, g, geo.ux, geo.dx);
  } else {
    g.groups = g.C;
    launch_nhwc_vec<scalar_t, 1>(xp, fp, op, g, geo.ux, geo.dx);
  }
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

  // Channels-last inputs of the hot geometries: the NHWC kernel (its work items, tile columns
  // times channel groups, are an int: at most (OW / 2 + 1) * C).
  const bool nhwc = channels_last && nhwc_geometry(g) &&
                    (OW + 2) * C < (int64_t(1) << 31) - 2 * kThreads;
  GANZOO_DISPATCH_FLOATS(x.scalar_type(), "ganzoo_upfirdn2d_cuda", [&] {
    if (nhwc) launch_nhwc<scalar_t>(x, f, out, g);
    else launch<scalar_t>(x, f, out, g);
  });
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
