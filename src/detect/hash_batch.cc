#include "detect/hash_batch.h"

#include <algorithm>
#include <cstring>

#include "detect/sketches.h"

namespace moat::detect {
namespace {

// ---- Scalar: the reference loops ----------------------------------------------------------

void Mix64Scalar(const uint64_t* in, uint64_t salt, uint64_t* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = Mix64(in[i] ^ salt);
}

void MinHashScalar(uint64_t element, const uint64_t* seeds, uint32_t* mins, size_t k) {
  for (size_t j = 0; j < k; ++j) {
    mins[j] = std::min(mins[j], static_cast<uint32_t>(Mix64(element ^ seeds[j]) >> 32));
  }
}

void MultiplyShiftMinScalar(uint64_t h, const uint64_t* multipliers, uint32_t* mins, size_t k) {
  for (size_t j = 0; j < k; ++j) {
    mins[j] = std::min(mins[j], static_cast<uint32_t>((h * multipliers[j]) >> 32));
  }
}

constexpr HashBatchKernels kScalarKernels = {Mix64Scalar, MinHashScalar, MultiplyShiftMinScalar};

#if defined(__x86_64__) && defined(__GNUC__)

// ---- Vector: one generic body (GCC vector extensions: lane-wise C++ operators), inlined into
// a wrapper per target, where the compiler lowers it to that target's instructions (64-bit
// lane multiplies are native with AVX-512DQ, three 32-bit multiplies with AVX2). Lane-wise
// integer arithmetic wraps exactly like the scalar code, so every lane is the scalar result.

using U64x8 = uint64_t __attribute__((vector_size(64)));
using U32x8 = uint32_t __attribute__((vector_size(32)));

// (Vectors pass by reference: a vector argument or result would depend on the target's ABI.)
[[gnu::always_inline]] inline void Load8(const uint64_t* p, U64x8& v) { std::memcpy(&v, p, sizeof(v)); }

[[gnu::always_inline]] inline void Mix64x8(U64x8& x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
}

// mins[0..8) = min(mins, high halves of x).
[[gnu::always_inline]] inline void MinHigh32(const U64x8& x, uint32_t* mins) {
  const U32x8 h = __builtin_convertvector(x >> 32, U32x8);
  U32x8 m;
  std::memcpy(&m, mins, sizeof(m));
  m = h < m ? h : m;
  std::memcpy(mins, &m, sizeof(m));
}

[[gnu::always_inline]] inline void Mix64Body(const uint64_t* in, uint64_t salt, uint64_t* out, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    U64x8 x;
    Load8(in + i, x);
    x ^= salt;
    Mix64x8(x);
    std::memcpy(out + i, &x, sizeof(x));
  }
  Mix64Scalar(in + i, salt, out + i, n - i);
}

[[gnu::always_inline]] inline void MinHashBody(uint64_t element, const uint64_t* seeds, uint32_t* mins, size_t k) {
  size_t j = 0;
  for (; j + 8 <= k; j += 8) {
    U64x8 x;
    Load8(seeds + j, x);
    x ^= element;
    Mix64x8(x);
    MinHigh32(x, mins + j);
  }
  MinHashScalar(element, seeds + j, mins + j, k - j);
}

[[gnu::always_inline]] inline void MultiplyShiftMinBody(uint64_t h, const uint64_t* multipliers, uint32_t* mins,
                                                        size_t k) {
  size_t j = 0;
  for (; j + 8 <= k; j += 8) {
    U64x8 x;
    Load8(multipliers + j, x);
    x *= h;
    MinHigh32(x, mins + j);
  }
  MultiplyShiftMinScalar(h, multipliers + j, mins + j, k - j);
}

[[gnu::target("avx512f,avx512dq,avx512vl,avx512bw")]] void Mix64Avx512(const uint64_t* in, uint64_t salt, uint64_t* out, size_t n) {
  Mix64Body(in, salt, out, n);
}
[[gnu::target("avx512f,avx512dq,avx512vl,avx512bw")]] void MinHashAvx512(uint64_t e, const uint64_t* seeds, uint32_t* mins, size_t k) {
  MinHashBody(e, seeds, mins, k);
}
[[gnu::target("avx512f,avx512dq,avx512vl,avx512bw")]] void MultiplyShiftMinAvx512(uint64_t h, const uint64_t* m, uint32_t* mins, size_t k) {
  MultiplyShiftMinBody(h, m, mins, k);
}

[[gnu::target("avx2")]] void Mix64Avx2(const uint64_t* in, uint64_t salt, uint64_t* out, size_t n) {
  Mix64Body(in, salt, out, n);
}
[[gnu::target("avx2")]] void MinHashAvx2(uint64_t e, const uint64_t* seeds, uint32_t* mins, size_t k) {
  MinHashBody(e, seeds, mins, k);
}
[[gnu::target("avx2")]] void MultiplyShiftMinAvx2(uint64_t h, const uint64_t* m, uint32_t* mins, size_t k) {
  MultiplyShiftMinBody(h, m, mins, k);
}

constexpr HashBatchKernels kAvx512Kernels = {Mix64Avx512, MinHashAvx512, MultiplyShiftMinAvx512};
constexpr HashBatchKernels kAvx2Kernels = {Mix64Avx2, MinHashAvx2, MultiplyShiftMinAvx2};

bool CpuHas(HashBatchIsa isa) {
  __builtin_cpu_init();
  switch (isa) {
    case HashBatchIsa::kScalar: return true;
    case HashBatchIsa::kAvx2: return __builtin_cpu_supports("avx2");
    case HashBatchIsa::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
  }
  return false;
}

#else  // no vector paths in this build

bool CpuHas(HashBatchIsa isa) { return isa == HashBatchIsa::kScalar; }

#endif

HashBatchIsa ChooseIsa() {
  if (CpuHas(HashBatchIsa::kAvx512)) return HashBatchIsa::kAvx512;
  if (CpuHas(HashBatchIsa::kAvx2)) return HashBatchIsa::kAvx2;
  return HashBatchIsa::kScalar;
}

const HashBatchKernels& Active() {
  static const HashBatchKernels& kernels = *HashBatchKernelsFor(ChooseIsa());
  return kernels;
}

}  // namespace

const HashBatchKernels* HashBatchKernelsFor(HashBatchIsa isa) {
  if (!CpuHas(isa)) return nullptr;
  switch (isa) {
    case HashBatchIsa::kScalar: return &kScalarKernels;
#if defined(__x86_64__) && defined(__GNUC__)
    case HashBatchIsa::kAvx2: return &kAvx2Kernels;
    case HashBatchIsa::kAvx512: return &kAvx512Kernels;
#else
    default: return nullptr;
#endif
  }
  return nullptr;
}

HashBatchIsa ActiveHashBatchIsa() { return ChooseIsa(); }

void Mix64Batch(const uint64_t* in, uint64_t salt, uint64_t* out, size_t n) { Active().mix64(in, salt, out, n); }

void MinHashUpdate(uint64_t element, const uint64_t* seeds, uint32_t* mins, size_t k) {
  Active().minhash(element, seeds, mins, k);
}

void MultiplyShiftMinUpdate(uint64_t h, const uint64_t* multipliers, uint32_t* mins, size_t k) {
  Active().multiply_shift_min(h, multipliers, mins, k);
}

}  // namespace moat::detect
