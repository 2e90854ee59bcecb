// Shared by ganzoo's CUDA kernels: light ATen and c10 headers (no torch/extension.h, no pybind11,
// no ATen/cuda/CUDAContext.h with its cuBLAS/cuSPARSE headers; the kernels register as
// torch.ops through TORCH_LIBRARY), launch checks and small helpers.
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <c10/util/Exception.h>
#include <c10/util/Half.h>
#include <c10/util/BFloat16.h>

#include <cstdint>

namespace ganzoo {

constexpr int kThreads = 256;  // threads per block of every kernel here

// The dtypes every kernel takes: half and bfloat16 are computed in float.
#define GANZOO_DISPATCH_FLOATS(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)

// A run of N values loaded or stored as one access of N * sizeof(T) bytes (16 for the
// vectorised paths): one instruction per thread instead of N, full 128-byte lines per warp.
template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

inline bool aligned(const void* p, size_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

inline cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

// Multiprocessors of the current device (asked once per device).
inline int multiprocessors() {
  static int counts[64] = {0};
  int device = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  int& n = counts[device % 64];
  if (n == 0) C10_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device));
  return n;
}

inline int64_t blocks_for(int64_t work, int64_t per_block) {
  return (work + per_block - 1) / per_block;
}

}  // namespace ganzoo
