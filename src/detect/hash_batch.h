#pragma once
// Batched forms of the integer hash steps the feature extractors apply to many values at once
// (Mix64 of every content feature, the MinHash permutations of a sketch). Each function gives,
// bit for bit, what the scalar loop in its comment gives; it runs on the widest vector unit the
// CPU has (AVX-512, else AVX2, else plain scalar code), chosen once per process. Thread-safe,
// allocation-free.

#include <cstddef>
#include <cstdint>

namespace moat::detect {

// out[i] = Mix64(in[i] ^ salt) for i < n (sketches.h). `out` may be `in`.
void Mix64Batch(const uint64_t* in, uint64_t salt, uint64_t* out, size_t n);

// mins[j] = min(mins[j], uint32_t(Mix64(element ^ seeds[j]) >> 32)) for j < k: one element added
// to a MinHash whose permutations are Mix64 under k seeds.
void MinHashUpdate(uint64_t element, const uint64_t* seeds, uint32_t* mins, size_t k);

// mins[j] = min(mins[j], uint32_t((h * multipliers[j]) >> 32)) for j < k: one element added to
// a MinHash whose permutations are multiply-shift hashes.
void MultiplyShiftMinUpdate(uint64_t h, const uint64_t* multipliers, uint32_t* mins, size_t k);

// The implementations, for tests and benchmarks: each must agree with kScalar wherever it runs.
enum class HashBatchIsa { kScalar, kAvx2, kAvx512 };
struct HashBatchKernels {
  void (*mix64)(const uint64_t* in, uint64_t salt, uint64_t* out, size_t n);
  void (*minhash)(uint64_t element, const uint64_t* seeds, uint32_t* mins, size_t k);
  void (*multiply_shift_min)(uint64_t h, const uint64_t* multipliers, uint32_t* mins, size_t k);
};
// The kernels of `isa`, or null when this CPU (or build) cannot run them.
const HashBatchKernels* HashBatchKernelsFor(HashBatchIsa isa);
// The ISA the functions above use.
HashBatchIsa ActiveHashBatchIsa();

}  // namespace moat::detect
