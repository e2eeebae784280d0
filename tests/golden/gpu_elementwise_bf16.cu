// kernel 0
#include <cuda_bf16.h>
template <typename T> __device__ __forceinline__ T sc_max(T a, T b) {
  return (a > b || a != a) ? a : b;
}
template <typename T> __device__ __forceinline__ T sc_min(T a, T b) {
  return (a < b || a != a) ? a : b;
}
template <typename T> __device__ __forceinline__ T sc_fmod(T a, T b) {
  T r = fmod(a, b);
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}
template <typename T> __device__ __forceinline__ T sc_ffloordiv(T a, T b) {
  return floor(a / b);
}
template <typename T> __device__ __forceinline__ T sc_fsign(T a) {
  return a != a ? a : (T)((a > 0) - (a < 0));
}
template <typename T> __device__ __forceinline__ T sc_imod(T a, T b) {
  if (b == 0) return 0;
  T r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}
template <typename T> __device__ __forceinline__ T sc_ifloordiv(T a, T b) {
  if (b == 0) return 0;
  T q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) q -= 1;
  return q;
}
template <typename T> __device__ __forceinline__ T sc_ipow(T a, T b) {
  T r = 1;
  while (b > 0) { if (b & 1) r *= a; a *= a; b >>= 1; }
  return r;
}

extern "C" __global__ void kernel(const __nv_bfloat16* __restrict__ in0, __nv_bfloat16* __restrict__ out0) {
  for (long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x; p < 64LL; p += (long long)blockDim.x * gridDim.x) {
    const long long i0 = p;
    const float v0 = __bfloat162float(in0[i0]);
    const float v1 = (-v0);
    const float v2 = (v1 * v0);
    const float v3 = expf(v2);
    const float v4 = 3.0f;
    const float v5 = (v4 * v0);
    const float v6 = sinf(v5);
    const float v7 = (v3 * v6);
    const float v8 = tanhf(v0);
    const float v9 = 0.5f;
    const float v10 = (v9 * v8);
    const float v11 = (v7 + v10);
    out0[i0] = __float2bfloat16_rn(v11);
  }
}
