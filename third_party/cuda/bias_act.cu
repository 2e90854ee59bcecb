// bias_act on CUDA GPUs: y = clamp(gain * act(x + b), -clamp, clamp) in one pass over memory,
// and the first and second derivatives that the autograd functions in ganzoo/ops/bias_act.py
// call:
//
//   order 0: out = G(z)                      z = x + b (b broadcast along one dimension)
//   order 1: out = g1 * G'(z)                g1: the incoming gradient
//   order 2: out = g1 * g2 * G''(z)          the derivative of order 1 with respect to x
//
// with G(z) = clamp(gain * act(z)); clamp's derivative is 1 inside [-clamp, clamp] (bounds
// included) and 0 outside. The specification is ganzoo.ops.bias_act's reference; the
// conventions at the kinks are those of third_party/cpu/bias_act.h (torch's backward formulas).
//
// Memory: each thread moves 16 bytes of every operand per access (4 floats, 8 halves), so a
// warp reads and writes whole 128-byte lines. A dense tensor of any layout is walked in memory
// order; the element at offset k has channel (k / inner) % C, found once per 16-byte pack and
// then advanced element by element. half and bfloat16 compute in float.

#include "common.cuh"

#include <torch/library.h>

#include <ATen/ops/empty_like.h>

#include <string>

namespace ganzoo {
namespace {

__device__ __forceinline__ float dexp(float x) { return expf(x); }
__device__ __forceinline__ double dexp(double x) { return exp(x); }
__device__ __forceinline__ float dexpm1(float x) { return expm1f(x); }
__device__ __forceinline__ double dexpm1(double x) { return expm1(x); }
__device__ __forceinline__ float dtanh(float x) { return tanhf(x); }
__device__ __forceinline__ double dtanh(double x) { return tanh(x); }
__device__ __forceinline__ float dlog1p(float x) { return log1pf(x); }
__device__ __forceinline__ double dlog1p(double x) { return log1p(x); }

template <typename T>
__device__ __forceinline__ T sigmoid(T z) { return T(1) / (T(1) + dexp(-z)); }

// Each activation: value f, first derivative d1, second derivative d2 (alpha: lrelu's slope
// or elu's alpha).
struct Linear {
  template <typename T> __device__ static T f(T z, T) { return z; }
  template <typename T> __device__ static T d1(T, T) { return T(1); }
  template <typename T> __device__ static T d2(T, T) { return T(0); }
};
struct Relu {
  template <typename T> __device__ static T f(T z, T) { return z <= T(0) ? T(0) : z; }
  template <typename T> __device__ static T d1(T z, T) { return z <= T(0) ? T(0) : T(1); }
  template <typename T> __device__ static T d2(T, T) { return T(0); }
};
struct LRelu {
  template <typename T> __device__ static T f(T z, T a) { return z > T(0) ? z : z * a; }
  template <typename T> __device__ static T d1(T z, T a) { return z > T(0) ? T(1) : a; }
  template <typename T> __device__ static T d2(T, T) { return T(0); }
};
struct Tanh {
  template <typename T> __device__ static T f(T z, T) { return dtanh(z); }
  template <typename T> __device__ static T d1(T z, T) {
    const T t = dtanh(z);
    return T(1) - t * t;
  }
  template <typename T> __device__ static T d2(T z, T) {
    const T t = dtanh(z);
    return T(-2) * t * (T(1) - t * t);
  }
};
struct Sigmoid {
  template <typename T> __device__ static T f(T z, T) { return sigmoid(z); }
  template <typename T> __device__ static T d1(T z, T) {
    const T s = sigmoid(z);
    return s * (T(1) - s);
  }
  template <typename T> __device__ static T d2(T z, T) {
    const T s = sigmoid(z);
    return s * (T(1) - s) * (T(1) - T(2) * s);
  }
};
struct Elu {
  template <typename T> __device__ static T f(T z, T a) { return z > T(0) ? z : a * dexpm1(z); }
  template <typename T> __device__ static T d1(T z, T a) { return z > T(0) ? T(1) : a * dexp(z); }
  template <typename T> __device__ static T d2(T z, T a) { return z > T(0) ? T(0) : a * dexp(z); }
};
struct Selu {  // torch.nn.functional.selu's constants
  static constexpr double kAlpha = 1.6732632423543772848170429916717;
  static constexpr double kScale = 1.0507009873554804934193349852946;
  template <typename T> __device__ static T f(T z, T) {
    return z > T(0) ? T(kScale) * z : T(kScale * kAlpha) * dexpm1(z);
  }
  template <typename T> __device__ static T d1(T z, T) {
    return z > T(0) ? T(kScale) : T(kScale * kAlpha) * dexp(z);
  }
  template <typename T> __device__ static T d2(T z, T) {
    return z > T(0) ? T(0) : T(kScale * kAlpha) * dexp(z);
  }
};
struct Softplus {  // beta 1, threshold 20: linear above it, as torch.nn.functional.softplus
  template <typename T> __device__ static T f(T z, T) { return z > T(20) ? z : dlog1p(dexp(z)); }
  template <typename T> __device__ static T d1(T z, T) { return z > T(20) ? T(1) : sigmoid(z); }
  template <typename T> __device__ static T d2(T z, T) {
    const T s = sigmoid(z);
    return z > T(20) ? T(0) : s * (T(1) - s);
  }
};
struct Swish {  // z * sigmoid(z)
  template <typename T> __device__ static T f(T z, T) { return z * sigmoid(z); }
  template <typename T> __device__ static T d1(T z, T) {
    const T s = sigmoid(z);
    return s * (T(1) + z * (T(1) - s));
  }
  template <typename T> __device__ static T d2(T z, T) {
    const T s = sigmoid(z);
    return s * (T(1) - s) * (T(2) + z * (T(1) - T(2) * s));
  }
};

struct Params {
  int64_t numel;
  int64_t channels;  // x.size(dim), 1 without bias
  int64_t inner;     // x.stride(dim): elements per run of one channel in memory
  double alpha, gain, clamp;  // clamp < 0: none
  int order;
};

template <typename scalar_t>
struct Operands {
  const scalar_t* __restrict__ x;
  const scalar_t* __restrict__ b;   // nullptr: no bias
  const scalar_t* __restrict__ g1;  // order >= 1
  const scalar_t* __restrict__ g2;  // order 2
  scalar_t* __restrict__ out;
};

// One element; `order` and `clamp` are uniform over the launch, so their branches cost no
// divergence (and keep the instantiations to one per activation and dtype).
template <typename Act, typename T>
__device__ __forceinline__ T element(T z, T g1, T g2, int order, bool clamp, T alpha, T gain,
                                     T c) {
  if (order == 0) {
    T y = gain * Act::f(z, alpha);
    return clamp ? (y < -c ? -c : (y > c ? c : y)) : y;  // NaN stays NaN, as torch.clamp
  }
  T d = gain * (order == 1 ? Act::d1(z, alpha) : Act::d2(z, alpha));
  if (clamp) {
    const T y = gain * Act::f(z, alpha);
    d = (y >= -c && y <= c) ? d : T(0);
  }
  return order == 1 ? g1 * d : g1 * g2 * d;
}

// k / inner and k % inner in 32 bits where the tensor allows (a 64-bit division is several
// times the cost).
__device__ __forceinline__ void divmod(int64_t k, int64_t d, bool small, int64_t& q,
                                       int64_t& r) {
  if (small) {
    const uint32_t k32 = static_cast<uint32_t>(k), d32 = static_cast<uint32_t>(d);
    q = k32 / d32;
    r = k32 - static_cast<uint32_t>(q) * d32;
  } else {
    q = k / d;
    r = k - q * d;
  }
}

template <typename Act, typename scalar_t, int kVec>
__global__ void __launch_bounds__(kThreads)
bias_act_kernel(Operands<scalar_t> a, Params p, bool small) {
  using T = at::opmath_type<scalar_t>;
  using V = Pack<scalar_t, kVec>;
  const T alpha = static_cast<T>(p.alpha), gain = static_cast<T>(p.gain);
  const T c = static_cast<T>(p.clamp);
  const bool clamp = p.clamp >= 0;
  const int64_t packs = p.numel / kVec;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t v = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; v < packs;
       v += stride) {
    const int64_t k = v * kVec;
    const V xv = *reinterpret_cast<const V*>(a.x + k);
    V g1v, g2v, ov;
    if (p.order >= 1) g1v = *reinterpret_cast<const V*>(a.g1 + k);
    if (p.order >= 2) g2v = *reinterpret_cast<const V*>(a.g2 + k);
    int64_t ch = 0, r = 0;
    if (a.b != nullptr) {
      int64_t run;
      divmod(k, p.inner, small, run, r);
      int64_t unused;
      divmod(run, p.channels, small, unused, ch);
    }
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
      T z = static_cast<T>(xv.v[i]);
      if (a.b != nullptr) {
        z += static_cast<T>(a.b[ch]);
        if (++r == p.inner) {  // the next element starts the next channel's run
          r = 0;
          ch = ch + 1 == p.channels ? 0 : ch + 1;
        }
      }
      const T g1 = p.order >= 1 ? static_cast<T>(g1v.v[i]) : T(0);
      const T g2 = p.order >= 2 ? static_cast<T>(g2v.v[i]) : T(0);
      ov.v[i] = static_cast<scalar_t>(element<Act>(z, g1, g2, p.order, clamp, alpha, gain, c));
    }
    *reinterpret_cast<V*>(a.out + k) = ov;
  }
}

template <typename Act, typename scalar_t>
void launch(const Operands<scalar_t>& a, const Params& p) {
  constexpr int kVec = 16 / sizeof(scalar_t);
  const bool small = p.numel < (int64_t(1) << 31);
  const size_t bytes = 16;
  const bool vec = p.numel % kVec == 0 && aligned(a.x, bytes) && aligned(a.out, bytes) &&
                   (a.g1 == nullptr || aligned(a.g1, bytes)) &&
                   (a.g2 == nullptr || aligned(a.g2, bytes));
  const int64_t packs = vec ? p.numel / kVec : p.numel;
  const int64_t max_blocks = int64_t(multiprocessors()) * 64;
  const int blocks = static_cast<int>(std::min(blocks_for(packs, kThreads), max_blocks));
  auto stream = current_stream();
  if (vec)
    bias_act_kernel<Act, scalar_t, kVec><<<blocks, kThreads, 0, stream>>>(a, p, small);
  else
    bias_act_kernel<Act, scalar_t, 1><<<blocks, kThreads, 0, stream>>>(a, p, small);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename scalar_t>
void launch_act(const std::string& act, const Operands<scalar_t>& a, const Params& p) {
  if (act == "linear") launch<Linear>(a, p);
  else if (act == "relu") launch<Relu>(a, p);
  else if (act == "lrelu") launch<LRelu>(a, p);
  else if (act == "tanh") launch<Tanh>(a, p);
  else if (act == "sigmoid") launch<Sigmoid>(a, p);
  else if (act == "elu") launch<Elu>(a, p);
  else if (act == "selu") launch<Selu>(a, p);
  else if (act == "softplus") launch<Softplus>(a, p);
  else if (act == "swish") launch<Swish>(a, p);
  else TORCH_CHECK(false, "bias_act: unknown activation '", act, "'");
}

// A tensor with exactly `like`'s strides holding `t`'s values (`like` is dense).
at::Tensor same_layout(const at::Tensor& t, const at::Tensor& like) {
  TORCH_CHECK(t.sizes() == like.sizes(), "bias_act: gradient of shape ", t.sizes(),
              " does not match x of shape ", like.sizes());
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), "bias_act: gradient dtype ",
              t.scalar_type(), " differs from x's ", like.scalar_type());
  TORCH_CHECK(t.device() == like.device(), "bias_act: gradient on ", t.device(),
              ", x on ", like.device());
  if (t.strides() == like.strides()) return t;
  return at::empty_like(like).copy_(t);
}

at::Tensor bias_act(const at::Tensor& x_in, const c10::optional<at::Tensor>& b_in,
                    const c10::optional<at::Tensor>& g1_in,
                    const c10::optional<at::Tensor>& g2_in, int64_t dim,
                    const std::string& act, double alpha, double gain, double clamp,
                    int64_t order) {
  TORCH_CHECK(x_in.is_cuda(), "bias_act (cuda): expected a CUDA tensor");
  TORCH_CHECK(order >= 0 && order <= 2, "bias_act: order must be 0, 1 or 2");
  TORCH_CHECK(order == 0 || (g1_in.has_value() && g1_in->defined()),
              "bias_act: order >= 1 needs g1");
  TORCH_CHECK(order < 2 || (g2_in.has_value() && g2_in->defined()),
              "bias_act: order 2 needs g2");
  const c10::cuda::CUDAGuard guard(x_in.device());
  at::Tensor x = x_in.is_non_overlapping_and_dense() ? x_in : x_in.contiguous();
  at::Tensor out = at::empty_like(x);  // keeps x's (dense) strides
  if (x.numel() == 0) return out;

  Params p{x.numel(), 1, x.numel(), alpha, gain, clamp, static_cast<int>(order)};
  at::Tensor b;
  if (b_in.has_value() && b_in->defined()) {
    TORCH_CHECK(x.dim() > 0, "bias_act: a bias needs x with at least one dimension");
    dim = dim < 0 ? dim + x.dim() : dim;
    TORCH_CHECK(dim >= 0 && dim < x.dim(), "bias_act: dim out of range");
    b = b_in->contiguous();
    TORCH_CHECK(b.dim() == 1 && b.size(0) == x.size(dim), "bias_act: bias of shape ",
                b.sizes(), " does not match dimension ", dim, " of x ", x.sizes());
    TORCH_CHECK(b.scalar_type() == x.scalar_type(), "bias_act: bias dtype differs from x's");
    TORCH_CHECK(b.device() == x.device(), "bias_act: bias on ", b.device(), ", x on ",
                x.device());
    p.channels = x.size(dim);
    // In a dense tensor the element at memory offset k has index (k / stride) % size along
    // `dim`; a size-1 dimension's stride is arbitrary, but then the index is always 0.
    p.inner = p.channels == 1 ? x.numel() : x.stride(dim);
  }
  at::Tensor g1 = order >= 1 ? same_layout(*g1_in, x) : at::Tensor();
  at::Tensor g2 = order >= 2 ? same_layout(*g2_in, x) : at::Tensor();
  GANZOO_DISPATCH_FLOATS(x.scalar_type(), "ganzoo_bias_act_cuda", [&] {
    Operands<scalar_t> a{x.const_data_ptr<scalar_t>(),
                         b.defined() ? b.const_data_ptr<scalar_t>() : nullptr,
                         g1.defined() ? g1.const_data_ptr<scalar_t>() : nullptr,
                         g2.defined() ? g2.const_data_ptr<scalar_t>() : nullptr,
                         out.data_ptr<scalar_t>()};
    launch_act<scalar_t>(act, a, p);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(ganzoo_cuda, m) {
  m.def("bias_act(Tensor x, Tensor? b, Tensor? g1, Tensor? g2, int dim, str act, float alpha, "
        "float gain, float clamp, int order) -> Tensor");
}

TORCH_LIBRARY_IMPL(ganzoo_cuda, CUDA, m) {
  m.impl("bias_act", &bias_act);
}

}  // namespace ganzoo
