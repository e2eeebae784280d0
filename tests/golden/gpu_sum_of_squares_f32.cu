// kernel 0
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

extern "C" __global__ void kernel(const float* __restrict__ in0, float* __restrict__ out0, double* __restrict__ part0) {
  __shared__ double sh0[256];
  double acc0 = (double)(0);
  for (long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x; p < 1048576LL; p += (long long)blockDim.x * gridDim.x) {
    const long long i0 = p;
    const float v0 = in0[i0];
    const float v1 = sinf(v0);
    const float v2 = 1.0f;
    const float v3 = (v1 + v2);
    const float v4 = (v3 * v3);
    const double v5 = (double)(v4);
    acc0 = (acc0 + (double)(v5));
  }
  sh0[threadIdx.x] = acc0;
  __syncthreads();
  for (int s = 128; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      sh0[threadIdx.x] = (sh0[threadIdx.x] + sh0[threadIdx.x + s]);
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) part0[blockIdx.x] = sh0[0];
}

extern "C" __global__ void kernel_finish(const double* __restrict__ part0, float* __restrict__ out0) {
  __shared__ double sh0[256];
  double acc0 = (double)(0);
  for (int b = threadIdx.x; b < 256; b += blockDim.x) {
    acc0 = (acc0 + part0[b]);
  }
  sh0[threadIdx.x] = acc0;
  __syncthreads();
  for (int s = 128; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      sh0[threadIdx.x] = (sh0[threadIdx.x] + sh0[threadIdx.x + s]);
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) out0[0] = (float)(sh0[0]);
}
