// Single-row gated GEMV for NVIDIA GPUs in CUDA C++: y = (x * (|x| * scale > t)) @ w_t + bias.
//
// w_t is the weight stored transposed, [in, out] row-major (W.t().contiguous()): a kept input channel is one
// contiguous row, a dropped one is never read. Built on first use by kernels/cuda_gemv.py (nvcc, the device's own
// sm_XX target) and called through ctypes on the caller's stream, so CUDA-graph capture records it like any launch.
//
// Work split: block (column tile, k split). A column tile is 256 output columns: each lane of a warp owns 8
// consecutive columns and reads them as one 16-byte load, so a warp reads a 512-byte run of one weight row. A block's
// WARPS warps share the column tile; each warp owns `rows` consecutive input channels of the block's k split.
//   1. gate: each warp scores its channels 32 at a time (one per lane), ballots the kept ones and appends their
//      indices and activation values to its own list in shared memory (no global scratch, no block barrier);
//   2. stream: the warp walks its list U rows at a time, issuing U 16-byte loads per lane before the first use
//      (PIPE: the next U rows' loads are issued before this batch's multiply-adds), accumulating in fp32;
//   3. reduce: the block's warps sum through shared memory in warp order; with one k split the block writes y,
//      else it stores an fp32 partial and the last block of the tile to arrive (a ticket counter, reset by that
//      block) sums the partials in split order, adds the bias and writes y. Deterministic: no atomic adds of
//      values, every sum in a fixed order.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

namespace {

constexpr int TILE = 256;  // output columns per block: 32 lanes x 8 columns

template <typename T>
__device__ __forceinline__ float to_f32(T v);
template <>
__device__ __forceinline__ float to_f32<__half>(__half v) { return __half2float(v); }
template <>
__device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// acc[0..7] += 8 values packed in v (4 x 32 bits, two 16-bit values each, low half first) times xv
template <typename T>
__device__ __forceinline__ void fma8(float (&acc)[8], const uint4& v, float xv);
template <>
__device__ __forceinline__ void fma8<__nv_bfloat16>(float (&acc)[8], const uint4& v, float xv) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    acc[2 * i] = fmaf(__uint_as_float(w[i] << 16), xv, acc[2 * i]);
    acc[2 * i + 1] = fmaf(__uint_as_float(w[i] & 0xFFFF0000u), xv, acc[2 * i + 1]);
  }
}
template <>
__device__ __forceinline__ void fma8<__half>(float (&acc)[8], const uint4& v, float xv) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    __half2 h = *reinterpret_cast<const __half2*>(&w[i]);
    float2 f = __half22float2(h);
    acc[2 * i] = fmaf(f.x, xv, acc[2 * i]);
    acc[2 * i + 1] = fmaf(f.y, xv, acc[2 * i + 1]);
  }
}

struct Params {
  const void* x;       // [K], T
  const void* w;       // [K, N], T, row-major
  const float* thr;    // nullptr: thr_val for every channel; else thr[k * thr_stride]
  float thr_val;
  long long thr_stride;
  const void* scale;   // nullptr, or [K] fp32 (scale_f32) / T
  int scale_f32;
  const void* bias;    // nullptr or [N], T
  float* partial;      // [splits, N] fp32 (splits > 1)
  int* tickets;        // [tiles], zero between calls (the last block of a tile resets its own)
  void* y;             // [N], T
  int K, N, rows;      // rows: input channels per warp (a multiple of 32)
};

// Issue the loads of list entries [j, j + U) (entries past n read nothing and weigh 0).
template <int U>
__device__ __forceinline__ void fetch(uint4 (&v)[U], float (&xv)[U], const int* idx, const float* xs, int j, int n,
                                      const uint4* wcol, int row_vecs, bool col_ok) {
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const bool ok = j + u < n;
    const int k = ok ? idx[j + u] : 0;
    xv[u] = ok ? xs[j + u] : 0.f;
    v[u] = (ok && col_ok) ? __ldcs(wcol + (size_t)k * row_vecs) : make_uint4(0u, 0u, 0u, 0u);
  }
}

template <typename T, int WARPS, int U, bool PIPE>
__global__ void __launch_bounds__(WARPS * 32) gated_gemv_kernel(Params p) {
  extern __shared__ unsigned char smem_raw[];
  __shared__ float red[WARPS][TILE];
  __shared__ int last_block;

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int tile = blockIdx.x, split = blockIdx.y;
  int* idx = reinterpret_cast<int*>(smem_raw) + warp * p.rows;
  float* xs = reinterpret_cast<float*>(smem_raw + (size_t)WARPS * p.rows * sizeof(int)) + warp * p.rows;

  const T* x = static_cast<const T*>(p.x);
  const int k_begin = (split * WARPS + warp) * p.rows;

  // 1. gate this warp's channels, 4 x 32 at a time (the four loads are issued together)
  int n = 0;
  for (int g0 = 0; g0 < p.rows; g0 += 128) {
    float xv[4];
    bool keep[4];
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int k = k_begin + g0 + q * 32 + lane;
      keep[q] = false;
      xv[q] = 0.f;
      if (g0 + q * 32 < p.rows && k < p.K) {
        xv[q] = to_f32<T>(x[k]);
        float a = fabsf(xv[q]);
        if (p.scale != nullptr)
          a *= p.scale_f32 ? static_cast<const float*>(p.scale)[k] : to_f32<T>(static_cast<const T*>(p.scale)[k]);
        const float t = p.thr != nullptr ? p.thr[(long long)k * p.thr_stride] : p.thr_val;
        keep[q] = a > t;
      }
    }
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const unsigned m = __ballot_sync(0xFFFFFFFFu, keep[q]);
      if (keep[q]) {
        const int pos = n + __popc(m & ((1u << lane) - 1u));
        idx[pos] = k_begin + g0 + q * 32 + lane;
        xs[pos] = xv[q];
      }
      n += __popc(m);
    }
  }
  __syncwarp();

  // 2. stream the kept rows of this warp's 8 columns per lane
  const int col = tile * TILE + lane * 8;
  const bool col_ok = col < p.N;  // N % 8 == 0: a lane's 8 columns are all in or all out
  const int row_vecs = p.N / 8;
  const uint4* wcol = static_cast<const uint4*>(p.w) + col / 8;
  float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  if (PIPE) {
    uint4 a[U];
    float xa[U];
    fetch<U>(a, xa, idx, xs, 0, n, wcol, row_vecs, col_ok);
    for (int j = 0; j < n; j += U) {
      uint4 b[U];
      float xb[U];
      fetch<U>(b, xb, idx, xs, j + U, n, wcol, row_vecs, col_ok);
#pragma unroll
      for (int u = 0; u < U; ++u) fma8<T>(acc, a[u], xa[u]);
#pragma unroll
      for (int u = 0; u < U; ++u) {
        a[u] = b[u];
        xa[u] = xb[u];
      }
    }
  } else {
    for (int j = 0; j < n; j += U) {
      uint4 a[U];
      float xa[U];
      fetch<U>(a, xa, idx, xs, j, n, wcol, row_vecs, col_ok);
#pragma unroll
      for (int u = 0; u < U; ++u) fma8<T>(acc, a[u], xa[u]);
    }
  }

  // 3. block sum in warp order, then the output or this split's partial
#pragma unroll
  for (int i = 0; i < 8; ++i) red[warp][lane * 8 + i] = acc[i];
  __syncthreads();
  const T* bias = static_cast<const T*>(p.bias);
  T* y = static_cast<T*>(p.y);
  const int splits = gridDim.y;
  for (int c = threadIdx.x; c < TILE; c += WARPS * 32) {
    const int o = tile * TILE + c;
    if (o >= p.N) continue;
    float s = 0.f;
#pragma unroll
    for (int w = 0; w < WARPS; ++w) s += red[w][c];
    if (splits == 1) {
      if (bias != nullptr) s += to_f32<T>(bias[o]);
      y[o] = from_f32<T>(s);
    } else {
      p.partial[(size_t)split * p.N + o] = s;
    }
  }
  if (splits == 1) return;
  __threadfence();  // this block's partials are visible device-wide before its ticket is drawn
  __syncthreads();
  if (threadIdx.x == 0) last_block = atomicAdd(p.tickets + tile, 1) == splits - 1;
  __syncthreads();
  if (!last_block) return;
  __threadfence();
  for (int c = threadIdx.x; c < TILE; c += WARPS * 32) {
    const int o = tile * TILE + c;
    if (o >= p.N) continue;
    float s = 0.f;
    for (int q = 0; q < splits; ++q) s += __ldcg(p.partial + (size_t)q * p.N + o);
    if (bias != nullptr) s += to_f32<T>(bias[o]);
    y[o] = from_f32<T>(s);
  }
  if (threadIdx.x == 0) p.tickets[tile] = 0;
}

template <typename T, int WARPS, int U, bool PIPE>
cudaError_t launch(const Params& p, cudaStream_t stream) {
  const int tiles = (p.N + TILE - 1) / TILE;
  const int per_block = WARPS * p.rows;
  const int splits = (p.K + per_block - 1) / per_block;
  const size_t smem = (size_t)WARPS * p.rows * (sizeof(int) + sizeof(float));
  gated_gemv_kernel<T, WARPS, U, PIPE><<<dim3(tiles, splits), WARPS * 32, smem, stream>>>(p);
  return cudaGetLastError();
}

template <typename T, int WARPS, int U>
cudaError_t by_pipe(const Params& p, int pipe, cudaStream_t s) {
  return pipe ? launch<T, WARPS, U, true>(p, s) : launch<T, WARPS, U, false>(p, s);
}

template <typename T, int WARPS>
cudaError_t by_unroll(const Params& p, int unroll, int pipe, cudaStream_t s) {
  switch (unroll) {
    case 4: return by_pipe<T, WARPS, 4>(p, pipe, s);
    case 8: return by_pipe<T, WARPS, 8>(p, pipe, s);
    default: return cudaErrorInvalidValue;
  }
}

template <typename T>
cudaError_t by_warps(const Params& p, int warps, int unroll, int pipe, cudaStream_t s) {
  switch (warps) {
    case 4: return by_unroll<T, 4>(p, unroll, pipe, s);
    case 8: return by_unroll<T, 8>(p, unroll, pipe, s);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace

// The one entry point (ctypes). dtype: 0 fp16, 1 bf16. Returns a cudaError_t (0: launched).
// The caller guarantees: N % 8 == 0, w and y 16-byte aligned, rows a positive multiple of 32,
// partial holds ceil(K / (warps * rows)) * N floats when that is > 1, tickets ceil(N / 256) zeroed ints.
extern "C" int wina_gated_gemv(int device, int dtype, int warps, int unroll, int pipe, int rows,
                               const void* x, const void* w, const float* thr, float thr_val, long long thr_stride,
                               const void* scale, int scale_f32, const void* bias, float* partial, int* tickets,
                               void* y, int K, int N, void* stream) {
  if (rows <= 0 || rows % 32 != 0 || N % 8 != 0 || K <= 0 || N <= 0) return (int)cudaErrorInvalidValue;
  cudaError_t e = cudaSetDevice(device);
  if (e != cudaSuccess) return (int)e;
  Params p{x, w, thr, thr_val, thr_stride, scale, scale_f32, bias, partial, tickets, y, K, N, rows};
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (dtype == 0) return (int)by_warps<__half>(p, warps, unroll, pipe, s);
  if (dtype == 1) return (int)by_warps<__nv_bfloat16>(p, warps, unroll, pipe, s);
  return (int)cudaErrorInvalidValue;
}

// Splits a launch with these settings makes (the caller sizes `partial` with it).
extern "C" int wina_gated_gemv_splits(int warps, int rows, int K) {
  const int per_block = warps * rows;
  return (K + per_block - 1) / per_block;
}
