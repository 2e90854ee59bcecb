// bias_act on the CPU: y = clamp(gain * act(x + b), -clamp, clamp) in one pass over memory,
// plus the first and second derivatives that the autograd functions in
// ganzoo/ops/bias_act.py call (see bias_act.h for the element formulas). The specification is
// ganzoo.ops.bias_act's reference implementation. float and double are computed natively,
// half and bfloat16 through float.

#include "bias_act.h"

#include <ATen/ops/empty_like.h>
#include <torch/library.h>

namespace ganzoo {
namespace {

// A tensor with exactly `like`'s strides holding `t`'s values (`like` is dense).
at::Tensor same_layout(const at::Tensor& t, const at::Tensor& like) {
  TORCH_CHECK(t.sizes() == like.sizes(), "bias_act: gradient of shape ", t.sizes(),
              " does not match x of shape ", like.sizes());
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), "bias_act: gradient dtype ",
              t.scalar_type(), " differs from x's ", like.scalar_type());
  if (t.strides() == like.strides()) return t;
  return at::empty_like(like).copy_(t);
}

at::Tensor run(const at::Tensor& x, const at::Tensor& b, const at::Tensor& g1,
               const at::Tensor& g2, const std::string& act, const BiasActParams& p) {
  at::Tensor out = at::empty_like(x);  // keeps x's (dense) strides
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ganzoo_bias_act", [&] {
    bias_act_typed<scalar_t>(p, act, x.const_data_ptr<scalar_t>(),
                             b.defined() ? b.const_data_ptr<scalar_t>() : nullptr,
                             g1.defined() ? g1.const_data_ptr<scalar_t>() : nullptr,
                             g2.defined() ? g2.const_data_ptr<scalar_t>() : nullptr,
                             out.data_ptr<scalar_t>(), x.numel());
  });
  return out;
}

at::Tensor bias_act(const at::Tensor& x_in, const c10::optional<at::Tensor>& b_in,
                    const c10::optional<at::Tensor>& g1_in,
                    const c10::optional<at::Tensor>& g2_in, int64_t dim,
                    const std::string& act, double alpha, double gain, double clamp,
                    int64_t order) {
  TORCH_CHECK(x_in.device().is_cpu(), "bias_act (cpp): expected a CPU tensor");
  TORCH_CHECK(order >= 0 && order <= 2, "bias_act: order must be 0, 1 or 2");
  TORCH_CHECK(order == 0 || (g1_in.has_value() && g1_in->defined()),
              "bias_act: order >= 1 needs g1");
  TORCH_CHECK(order < 2 || (g2_in.has_value() && g2_in->defined()),
              "bias_act: order 2 needs g2");
  // Any dense layout (contiguous, channels-last, permuted) is walked in memory order; anything
  // else (slices, expanded) is made contiguous first.
  at::Tensor x = x_in.is_non_overlapping_and_dense() ? x_in : x_in.contiguous();
  if (x.numel() == 0) return at::empty_like(x);

  BiasActParams p{1, x.numel(), alpha, gain, clamp, static_cast<int>(order)};
  at::Tensor b;
  if (b_in.has_value() && b_in->defined()) {
    TORCH_CHECK(x.dim() > 0, "bias_act: a bias needs x with at least one dimension");
    dim = dim < 0 ? dim + x.dim() : dim;
    TORCH_CHECK(dim >= 0 && dim < x.dim(), "bias_act: dim out of range");
    b = b_in->contiguous();
    TORCH_CHECK(b.dim() == 1 && b.size(0) == x.size(dim), "bias_act: bias of shape ",
                b.sizes(), " does not match dimension ", dim, " of x ", x.sizes());
    TORCH_CHECK(b.scalar_type() == x.scalar_type(), "bias_act: bias dtype differs from x's");
    p.channels = x.size(dim);
    // In a dense tensor the element at memory offset k has index (k / stride) % size along
    // `dim`; a size-1 dimension's stride is arbitrary, but then the index is always 0.
    p.inner = p.channels == 1 ? x.numel() : x.stride(dim);
  }
  at::Tensor g1 = order >= 1 ? same_layout(*g1_in, x) : at::Tensor();
  at::Tensor g2 = order >= 2 ? same_layout(*g2_in, x) : at::Tensor();

  if (x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16) {
    // Computed in float (as the float kernels compute anyway), rounded once at the end.
    auto to_float = [](const at::Tensor& t) { return t.defined() ? t.to(at::kFloat) : t; };
    return run(to_float(x), to_float(b), to_float(g1), to_float(g2), act, p)
        .to(x.scalar_type());
  }
  return run(x, b, g1, g2, act, p);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(ganzoo_cpu, m) {
  m.def("bias_act(Tensor x, Tensor? b, Tensor? g1, Tensor? g2, int dim, str act, float alpha, "
        "float gain, float clamp, int order) -> Tensor");
}

TORCH_LIBRARY_IMPL(ganzoo_cpu, CPU, m) {
  m.impl("bias_act", &bias_act);
}

}  // namespace ganzoo
