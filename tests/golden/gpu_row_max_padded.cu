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

extern "C" __global__ void kernel(const double* __restrict__ in0, double* __restrict__ out0) {
  __shared__ double sh0[256];
  for (long long row = blockIdx.x; row < 32LL; row += gridDim.x) {
    double acc0 = (-__longlong_as_double(0x7ff0000000000000LL));
    for (long long col = threadIdx.x; col < 40LL; col += blockDim.x) {
      const long long i0 = row;
      const long long i1 = col;
      const double v0 = in0[(((i0 + -1LL) + 30LL) % 30LL) * 40LL + i1];
      const double v1 = 2.0;
      const double v2 = (v0 * v1);
      acc0 = sc_max(acc0, (double)(v2));
    }
    sh0[threadIdx.x] = acc0;
    __syncthreads();
    for (int s = 128; s > 0; s >>= 1) {
      if (threadIdx.x < s) {
        sh0[threadIdx.x] = sc_max(sh0[threadIdx.x], sh0[threadIdx.x + s]);
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) out0[row] = (double)(sh0[0]);
    __syncthreads();  // sh is reused by the next row
  }
}
