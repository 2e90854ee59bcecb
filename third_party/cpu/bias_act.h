// bias_act's element loops (float and double; bias_act.cpp computes half and bfloat16 through
// float, which saves half the build time for a rarely used CPU dtype).
//
//   order 0: out = G(z)                      z = x + b (b broadcast along one dimension)
//   order 1: out = g1 * G'(z)                g1: the incoming gradient
//   order 2: out = g1 * g2 * G''(z)          the derivative of order 1 with respect to x
//
// with G(z) = clamp(gain * act(z)); clamp's derivative is 1 inside [-clamp, clamp] (bounds
// included, as torch.clamp's backward) and 0 outside. The derivative conventions at the kinks
// follow torch's backward formulas for the reference's ops (relu: 0 at 0; lrelu: alpha at 0;
// elu/selu: the exponential branch at 0; softplus: linear above 20).
#pragma once

#include "common.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

namespace ganzoo {

// Element functions must inline into the loops for those to vectorise.
#if defined(_MSC_VER)
#define GANZOO_INLINE __forceinline
#else
#define GANZOO_INLINE inline __attribute__((always_inline))
#endif

// exp, expm1 and tanh: libm for double; for float (also the compute type of half and
// bfloat16) straight-line code the compiler vectorises: n = round(x / ln 2), r = x - n ln 2
// (two-part ln 2), expm1(r) by its Taylor series to r^8 (truncation below 1e-8 relative for
// |r| <= ln 2 / 2), scaled by 2^n through the exponent bits. Relative error within a few ulp;
// exp saturates to 0 below -87.3 and to +inf above 88.3 (used only inside sigmoid-like
// denominators, where that changes results by less than 1e-38).
template <typename T>
struct Math {
  static GANZOO_INLINE T exp(T x) { return std::exp(x); }
  static GANZOO_INLINE T expm1(T x) { return std::expm1(x); }
  static GANZOO_INLINE T tanh(T x) { return std::tanh(x); }
  static GANZOO_INLINE T softplus(T z) { return std::log1p(std::exp(z)); }
};

template <>
struct Math<float> {
  // 2^n * (1 + em) = exp(x), with em = expm1(r) and s = 2^n.
  static GANZOO_INLINE void reduce(float x, float& s, float& em) {
    const float xc = std::min(std::max(x, -87.3f), 88.3f);  // NaN passes through
    const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round
    const float r = (xc - n * 0.693359375f) - n * -2.12194440054690583e-4f;
    float p = 1.0f / 40320.0f;
    p = p * r + 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    em = r + r * r * p;
    const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n, n in [-126, 127]
    std::memcpy(&s, &bits, sizeof s);  // (std::bit_cast needs C++20; older torch uses C++17)
  }
  static GANZOO_INLINE float exp(float x) {
    float s, em;
    reduce(x, s, em);
    const float y = s * (1.0f + em);
    return x > 88.3f ? INFINITY : (x < -87.3f ? 0.0f : y);
  }
  static GANZOO_INLINE float expm1(float x) {
    float s, em;
    reduce(x, s, em);
    const float y = s * em + (s - 1.0f);
    return x > 88.3f ? INFINITY : (x < -87.3f ? -1.0f : y);
  }
  static GANZOO_INLINE float tanh(float x) {
    // tanh|x| = e / (e + 2) with e = expm1(2|x|): accurate near 0 as well; tanh(9) is 1 in
    // float, so |x| is capped there to keep e finite.
    const float a = std::min(std::abs(x), 9.0f);
    const float e = expm1(2.0f * a);
    return std::copysign(e / (e + 2.0f), x);  // NaN stays NaN
  }
  // log1p(exp(z)) = max(z, 0) + log1p(exp(-|z|)); the log1p of u in (0, 1] as log(w) + c / w
  // with w = 1 + u rounded and c its rounding error; log(w) = e ln 2 + 2 atanh(s),
  // s = (m - 1) / (m + 1), m = w or w / 2 in [0.707, 1.414], so |s| <= 0.172 and the atanh
  // series to s^11 is exact to float precision.
  static GANZOO_INLINE float softplus(float z) {
    const float u = exp(-std::abs(z));
    const float w = 1.0f + u;
    const float c = u - (w - 1.0f);
    const bool big = w > 1.41421356f;
    const float m = big ? 0.5f * w : w;
    const float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
    float p = 1.0f / 11.0f;
    p = p * s2 + 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    const float log_w = (big ? 0.693147181f : 0.0f) + 2.0f * s * (1.0f + s2 * p);
    return std::max(z, 0.0f) + log_w + c / w;
  }
};

template <typename T>
GANZOO_INLINE T sigmoid(T z) { return T(1) / (T(1) + Math<T>::exp(-z)); }

// Each activation: value f, first derivative d1, second derivative d2 (alpha: lrelu's slope
// or elu's alpha; the others ignore it). Both sides of a select are computed in the source, so
// the compiler can turn the select into a blend.
struct Linear {
  template <typename T> static GANZOO_INLINE T f(T z, T) { return z; }
  template <typename T> static GANZOO_INLINE T d1(T, T) { return T(1); }
  template <typename T> static GANZOO_INLINE T d2(T, T) { return T(0); }
};
struct Relu {
  template <typename T> static GANZOO_INLINE T f(T z, T) {
    return z <= T(0) ? T(0) : z;  // NaN stays NaN
  }
  template <typename T> static GANZOO_INLINE T d1(T z, T) { return z <= T(0) ? T(0) : T(1); }
  template <typename T> static GANZOO_INLINE T d2(T, T) { return T(0); }
};
struct LRelu {
  template <typename T> static GANZOO_INLINE T f(T z, T a) {
    const T n = z * a;
    return z > T(0) ? z : n;
  }
  template <typename T> static GANZOO_INLINE T d1(T z, T a) { return z > T(0) ? T(1) : a; }
  template <typename T> static GANZOO_INLINE T d2(T, T) { return T(0); }
};
struct Tanh {
  template <typename T> static GANZOO_INLINE T f(T z, T) { return Math<T>::tanh(z); }
  template <typename T> static GANZOO_INLINE T d1(T z, T) {
    const T t = Math<T>::tanh(z);
    return T(1) - t * t;
  }
  template <typename T> static GANZOO_INLINE T d2(T z, T) {
    const T t = Math<T>::tanh(z);
    return T(-2) * t * (T(1) - t * t);
  }
};
struct Sigmoid {
  template <typename T> static GANZOO_INLINE T f(T z, T) { return sigmoid(z); }
  template <typename T> static GANZOO_INLINE T d1(T z, T) {
    const T s = sigmoid(z);
    return s * (T(1) - s);
  }
  template <typename T> static GANZOO_INLINE T d2(T z, T) {
    const T s = sigmoid(z);
    return s * (T(1) - s) * (T(1) - T(2) * s);
  }
};
struct Elu {
  template <typename T> static GANZOO_INLINE T f(T z, T a) {
    const T n = a * Math<T>::expm1(z);
    return z > T(0) ? z : n;
  }
  template <typename T> static GANZOO_INLINE T d1(T z, T a) {
    const T n = a * Math<T>::exp(z);
    return z > T(0) ? T(1) : n;
  }
  template <typename T> static GANZOO_INLINE T d2(T z, T a) {
    const T n = a * Math<T>::exp(z);
    return z > T(0) ? T(0) : n;
  }
};
struct Selu {  // torch.nn.functional.selu's constants
  static constexpr double kAlpha = 1.6732632423543772848170429916717;
  static constexpr double kScale = 1.0507009873554804934193349852946;
  template <typename T> static GANZOO_INLINE T f(T z, T) {
    const T n = T(kScale * kAlpha) * Math<T>::expm1(z);
    return z > T(0) ? T(kScale) * z : n;
  }
  template <typename T> static GANZOO_INLINE T d1(T z, T) {
    const T n = T(kScale * kAlpha) * Math<T>::exp(z);
    return z > T(0) ? T(kScale) : n;
  }
  template <typename T> static GANZOO_INLINE T d2(T z, T) {
    const T n = T(kScale * kAlpha) * Math<T>::exp(z);
    return z > T(0) ? T(0) : n;
  }
};
struct Softplus {  // beta 1, threshold 20: linear above it, as torch.nn.functional.softplus
  template <typename T> static GANZOO_INLINE T f(T z, T) {
    const T s = Math<T>::softplus(z);
    return z > T(20) ? z : s;
  }
  template <typename T> static GANZOO_INLINE T d1(T z, T) {
    const T s = sigmoid(z);
    return z > T(20) ? T(1) : s;
  }
  template <typename T> static GANZOO_INLINE T d2(T z, T) {
    const T s = sigmoid(z);
    return z > T(20) ? T(0) : s * (T(1) - s);
  }
};
struct Swish {  // z * sigmoid(z)
  template <typename T> static GANZOO_INLINE T f(T z, T) { return z * sigmoid(z); }
  template <typename T> static GANZOO_INLINE T d1(T z, T) {
    const T s = sigmoid(z);
    return s * (T(1) + z * (T(1) - s));
  }
  template <typename T> static GANZOO_INLINE T d2(T z, T) {
    const T s = sigmoid(z);
    return s * (T(1) - s) * (T(2) + z * (T(1) - T(2) * s));
  }
};

struct BiasActParams {
  int64_t channels;  // x.size(dim), 1 without bias
  int64_t inner;     // x.stride(dim): elements per run of one channel in memory
  double alpha, gain, clamp;  // clamp < 0: none
  int order;
};

// One element: `z` = x + b, `k` its memory offset.
template <typename Act, int kOrder, bool kClamp, typename scalar_t, typename T>
GANZOO_INLINE scalar_t bias_act_element(T z, const scalar_t* g1, const scalar_t* g2, int64_t k,
                                 T alpha, T gain, T clamp) {
  if (kOrder == 0) {
    T y = gain * Act::f(z, alpha);
    if (kClamp) y = std::min(std::max(y, -clamp), clamp);  // keeps NaN, as torch.clamp
    return static_cast<scalar_t>(y);
  }
  T d = gain * (kOrder == 1 ? Act::d1(z, alpha) : Act::d2(z, alpha));
  if (kClamp) {
    const T y = gain * Act::f(z, alpha);
    d = ((y >= -clamp) & (y <= clamp)) ? d : T(0);  // & not &&: no branch
  }
  T g = static_cast<T>(g1[k]);
  if (kOrder == 2) g *= static_cast<T>(g2[k]);
  return static_cast<scalar_t>(g * d);
}

template <typename scalar_t, typename Act, int kOrder, bool kClamp>
void bias_act_loop(const BiasActParams& p, const scalar_t* x, const scalar_t* b,
                   const scalar_t* g1, const scalar_t* g2, scalar_t* out, int64_t numel) {
  using T = at::opmath_type<scalar_t>;
  const T alpha = static_cast<T>(p.alpha), gain = static_cast<T>(p.gain);
  const T clamp = static_cast<T>(p.clamp);
  const int64_t C = p.channels, inner = p.inner;
  at::parallel_for(0, numel, kGrain, [&](int64_t begin, int64_t end) {
    int64_t k = begin;
    if (b == nullptr) {
      for (; k < end; ++k)
        out[k] = bias_act_element<Act, kOrder, kClamp>(static_cast<T>(x[k]), g1, g2, k, alpha,
                                                       gain, clamp);
    } else if (inner == 1) {
      // Channels innermost (channels-last): runs of consecutive channels, a bias per element.
      while (k < end) {
        const int64_t c0 = k % C;
        const int64_t stop = k + std::min(C - c0, end - k);
        const scalar_t* bc = b + c0 - k;  // bc[k] is the bias of element k in this run
        for (; k < stop; ++k)
          out[k] = bias_act_element<Act, kOrder, kClamp>(
              static_cast<T>(x[k]) + static_cast<T>(bc[k]), g1, g2, k, alpha, gain, clamp);
      }
    } else {
      // Runs of `inner` elements sharing one channel (e.g. a plane of NCHW).
      while (k < end) {
        const int64_t run_index = k / inner;
        const T bias = static_cast<T>(b[run_index % C]);
        const int64_t stop = std::min((run_index + 1) * inner, end);
        for (; k < stop; ++k)
          out[k] = bias_act_element<Act, kOrder, kClamp>(static_cast<T>(x[k]) + bias, g1, g2,
                                                         k, alpha, gain, clamp);
      }
    }
  });
}

template <typename scalar_t, typename Act>
void bias_act_orders(const BiasActParams& p, const scalar_t* x, const scalar_t* b,
                     const scalar_t* g1, const scalar_t* g2, scalar_t* out, int64_t numel) {
  const bool clamp = p.clamp >= 0;
#define GANZOO_RUN(ORDER)                                                                 \
  (clamp ? bias_act_loop<scalar_t, Act, ORDER, true>(p, x, b, g1, g2, out, numel)         \
         : bias_act_loop<scalar_t, Act, ORDER, false>(p, x, b, g1, g2, out, numel))
  switch (p.order) {
    case 0: GANZOO_RUN(0); break;
    case 1: GANZOO_RUN(1); break;
    default: GANZOO_RUN(2); break;
  }
#undef GANZOO_RUN
}

// Every activation for one dtype; explicitly instantiated in one translation unit per dtype.
template <typename scalar_t>
void bias_act_typed(const BiasActParams& p, const std::string& act, const scalar_t* x,
                    const scalar_t* b, const scalar_t* g1, const scalar_t* g2, scalar_t* out,
                    int64_t n) {
  if (act == "linear") bias_act_orders<scalar_t, Linear>(p, x, b, g1, g2, out, n);
  else if (act == "relu") bias_act_orders<scalar_t, Relu>(p, x, b, g1, g2, out, n);
  else if (act == "lrelu") bias_act_orders<scalar_t, LRelu>(p, x, b, g1, g2, out, n);
  else if (act == "tanh") bias_act_orders<scalar_t, Tanh>(p, x, b, g1, g2, out, n);
  else if (act == "sigmoid") bias_act_orders<scalar_t, Sigmoid>(p, x, b, g1, g2, out, n);
  else if (act == "elu") bias_act_orders<scalar_t, Elu>(p, x, b, g1, g2, out, n);
  else if (act == "selu") bias_act_orders<scalar_t, Selu>(p, x, b, g1, g2, out, n);
  else if (act == "softplus") bias_act_orders<scalar_t, Softplus>(p, x, b, g1, g2, out, n);
  else if (act == "swish") bias_act_orders<scalar_t, Swish>(p, x, b, g1, g2, out, n);
  else TORCH_CHECK(false, "bias_act: unknown activation '", act, "'");
}

}  // namespace ganzoo
