// Shared by ganzoo's C++ CPU kernels. Only light ATen headers (no torch/extension.h, no
// pybind11): the kernels are registered as torch.ops through TORCH_LIBRARY, which keeps a
// first build on a 2-core machine short.
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <c10/core/MemoryFormat.h>
#include <c10/util/Exception.h>
#include <c10/util/Optional.h>

#include <cstdint>

namespace ganzoo {

// Elements (or multiply-adds) per parallel chunk: below this a thread costs more than it saves.
constexpr int64_t kGrain = 32768;

// The dtypes every kernel takes: half and bfloat16 are computed in float.
#define GANZOO_DISPATCH_FLOATS(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)

}  // namespace ganzoo
