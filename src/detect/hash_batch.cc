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

// The vector loop every kernel shares: loads eight inputs at a time into `x` and hands them to
// `lanes(x, i)` (i: the first input's index); the last n % 8 go to `tail(i)`, the scalar loop.
// The lambdas are always inlined, so each kernel compiles to one loop for its target.
template <typename Lanes, typename Tail>
[[gnu::always_inline]] inline void ForEach8(const uint64_t* in, size_t n, Lanes lanes, Tail tail) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    U64x8 x;
    Load8(in + i, x);
    lanes(x, i);
  }
  tail(i);
}

#define MOAT_INLINE __attribute__((always_inline))

[[gnu::always_inline]] inline void Mix64Body(const uint64_t* in, uint64_t salt, uint64_t* out, size_t n) {
  ForEach8(
      in, n,
      [&](U64x8& x, size_t i) MOAT_INLINE {
        x ^= salt;
        Mix64x8(x);
        std::memcpy(out + i, &x, sizeof(x));
      },
      [&](size_t i) MOAT_INLINE { Mix64Scalar(in + i, salt, out + i, n - i); });
}

[[gnu::always_inline]] inline void MinHashBody(uint64_t element, const uint64_t* seeds, uint32_t* mins, size_t k) {
  ForEach8(
      seeds, k,
      [&](U64x8& x, size_t j) MOAT_INLINE {
        x ^= element;
        Mix64x8(x);
        MinHigh32(x, mins + j);
      },
      [&](size_t j) MOAT_INLINE { MinHashScalar(element, seeds + j, mins + j, k - j); });
}

[[gnu::always_inline]] inline void MultiplyShiftMinBody(uint64_t h, const uint64_t* multipliers, uint32_t* mins,
                                                        size_t k) {
  ForEach8(
      multipliers, k,
      [&](U64x8& x, size_t j) MOAT_INLINE {
        x *= h;
        MinHigh32(x, mins + j);
      },
      [&](size_t j) MOAT_INLINE { MultiplyShiftMinScalar(h, multipliers + j, mins + j, k - j); });
}

#undef MOAT_INLINE

// The three kernels of one target, `k<Isa>Kernels`: each wrapper is compiled for the target `features` and
// the generic body is inlined into it (a macro, because a target attribute cannot be a template
// argument).
#define MOAT_HASH_BATCH_KERNELS_FOR(Isa, features)                                                \
  [[gnu::target(features)]] void Mix64##Isa(const uint64_t* in, uint64_t salt, uint64_t* out,       \
                                          size_t n) {                                             \
    Mix64Body(in, salt, out, n);                                                                  \
  }                                                                                               \
  [[gnu::target(features)]] void MinHash##Isa(uint64_t e, const uint64_t* seeds, uint32_t* mins,    \
                                            size_t k) {                                           \
    MinHashBody(e, seeds, mins, k);                                                               \
  }                                                                                               \
  [[gnu::target(features)]] void MultiplyShiftMin##Isa(uint64_t h, const uint64_t* m,               \
                                                     uint32_t* mins, size_t k) {                  \
    MultiplyShiftMinBody(h, m, mins, k);                                                          \
  }                                                                                               \
  constexpr HashBatchKernels k##Isa##Kernels = {Mix64##Isa, MinHash##Isa, MultiplyShiftMin##Isa};

MOAT_HASH_BATCH_KERNELS_FOR(Avx512, "avx512f,avx512dq,avx512vl,avx512bw")
MOAT_HASH_BATCH_KERNELS_FOR(Avx2, "avx2")
#undef MOAT_HASH_BATCH_KERNELS_FOR

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
