// The process settings of kernels/blas_runtime.h, observed through glibc's own statistics.
#include "kernels/blas_runtime.h"

#include <gtest/gtest.h>
#include <malloc.h>

#include <cstdlib>
#include <cstring>

namespace moebench::kernels {
namespace {

TEST(KeepTensorMemory, LargeBlocksComeFromTheHeapNotFreshMmaps) {
  ::unsetenv("MOEBENCH_ALLOC_AS_LOADED");
  ASSERT_TRUE(keep_tensor_memory());
  // 64 MiB is above glibc's largest dynamic mmap threshold (32 MiB): with default settings it
  // would be a fresh mmap (hblks + 1) every time.
  constexpr size_t kBytes = size_t{64} << 20;
  const auto before = ::mallinfo2();
  void* block = std::malloc(kBytes);
  ASSERT_NE(block, nullptr);
  std::memset(block, 1, kBytes);  // touch it, so the compiler keeps the allocation
  const auto during = ::mallinfo2();
  EXPECT_EQ(during.hblks, before.hblks);
  EXPECT_EQ(during.hblkhd, before.hblkhd);
  std::free(block);
  // Freed, it stays with the process (no trim) for the next block of the same size.
  const auto after = ::mallinfo2();
  EXPECT_GE(after.fordblks, before.fordblks + kBytes);

  ::setenv("MOEBENCH_ALLOC_AS_LOADED", "1", 1);
  EXPECT_FALSE(keep_tensor_memory());
  ::unsetenv("MOEBENCH_ALLOC_AS_LOADED");
}

}  // namespace
}  // namespace moebench::kernels
