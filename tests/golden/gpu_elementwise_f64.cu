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
  for (long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x; p < 1048576LL; p += (long long)blockDim.x * gridDim.x) {
    const long long i0 = p;
    const double v0 = in0[i0];
    const double v1 = (-v0);
    const double v2 = (v1 * v0);
    const double v3 = exp(v2);
    const double v4 = 3.0;
    const double v5 = (v4 * v0);
    const double v6 = sin(v5);
    const double v7 = (v3 * v6);
    const double v8 = tanh(v0);
    const double v9 = 0.5;
    const double v10 = (v9 * v8);
    const double v11 = (v7 + v10);
    out0[i0] = (double)(v11);
  }
}
