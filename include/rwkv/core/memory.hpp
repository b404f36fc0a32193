#pragma once
// Anonymous memory with a chosen page size, for the weights a decode step streams through. File-backed mappings
// and small-page heap memory are read through 4 KiB pages (one TLB entry each); on the machines we measured, the
// same weights in 2 MiB-aligned anonymous memory with transparent huge pages decode up to 1.24x faster, and a
// mapping whose page cache the kernel evicts and re-reads is slower still (issue #15). Linux: mmap + madvise;
// elsewhere plain aligned allocation.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "rwkv/core/error.hpp"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace rwkv {

enum class page_size { small, huge };

// One anonymous region of at least `bytes`, 2 MiB-aligned; huge pages requested with MADV_HUGEPAGE (a request:
// the kernel may still back it with small pages), small pages forced with MADV_NOHUGEPAGE. Optionally locked in
// memory (mlock), so that it is never swapped or reclaimed.
class anonymous_memory {
 public:
  static constexpr std::size_t huge_page = std::size_t{2} << 20;

  anonymous_memory() = default;
  anonymous_memory(std::size_t bytes, page_size pages, bool lock = false) {
    size_ = (bytes + huge_page - 1) / huge_page * huge_page;
    if (size_ == 0) return;
#if defined(__linux__)
    // Over-reserve by one huge page and trim to a 2 MiB boundary, so huge pages can back the whole region.
    const std::size_t reserve = size_ + huge_page;
    void* p = ::mmap(nullptr, reserve, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw error("cannot map " + std::to_string(size_ >> 20) + " MiB of anonymous memory");
    const auto start = reinterpret_cast<std::uintptr_t>(p);
    const auto aligned = (start + huge_page - 1) / huge_page * huge_page;
    if (aligned > start) ::munmap(p, aligned - start);
    const std::size_t tail = reserve - (aligned - start) - size_;
    if (tail) ::munmap(reinterpret_cast<void*>(aligned + size_), tail);
    data_ = reinterpret_cast<std::byte*>(aligned);
    ::madvise(data_, size_, pages == page_size::huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    if (lock && ::mlock(data_, size_) != 0) {
      ::munmap(data_, size_);
      data_ = nullptr;
      throw error("cannot lock " + std::to_string(size_ >> 20) +
                  " MiB of weights in memory (mlock; raise RLIMIT_MEMLOCK, e.g. ulimit -l, or load without it)");
    }
#else
    (void)pages;
    (void)lock;
    data_ = static_cast<std::byte*>(::operator new (size_, std::align_val_t{huge_page}));
#endif
  }

  anonymous_memory(const anonymous_memory&) = delete;
  anonymous_memory& operator=(const anonymous_memory&) = delete;
  anonymous_memory(anonymous_memory&& o) noexcept : data_(o.data_), size_(o.size_) { o.data_ = nullptr; }
  anonymous_memory& operator=(anonymous_memory&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    return *this;
  }
  ~anonymous_memory() {
    if (!data_) return;
#if defined(__linux__)
    ::munmap(data_, size_);
#else
    ::operator delete (data_, std::align_val_t{huge_page});
#endif
  }

  std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }

  // Gives the pages past the first `used` bytes back to the system (and unlocks them): the unused tail of a
  // region that will not grow.
  void release_tail(std::size_t used) noexcept {
#if defined(__linux__)
    constexpr std::size_t page = 4096;
    const std::size_t keep = (used + page - 1) / page * page;
    if (!data_ || keep >= size_) return;
    ::munlock(data_ + keep, size_ - keep);
    ::madvise(data_ + keep, size_ - keep, MADV_DONTNEED);
#else
    (void)used;
#endif
  }

 private:
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

// Places many buffers (the weight matrices of one model) in anonymous memory of one page size, in chunks of at
// least 64 MiB, each buffer 64-byte aligned. Buffers live as long as any shared_ptr to their chunk.
class weight_arena {
 public:
  weight_arena(page_size pages, bool lock) : pages_(pages), lock_(lock) {}

  struct block {
    std::byte* data;
    std::shared_ptr<const void> owner;
  };

  block allocate(std::size_t bytes) {
    bytes = (bytes + 63) / 64 * 64;
    if (!current_ || used_ + bytes > current_->size()) {
      trim();
      current_ = std::make_shared<anonymous_memory>(std::max(bytes, std::size_t{64} << 20), pages_, lock_);
      used_ = 0;
    }
    std::byte* p = current_->data() + used_;
    used_ += bytes;
    return {p, current_};
  }

  // Releases the unused tail of the current chunk (locked memory counts against RLIMIT_MEMLOCK).
  void trim() noexcept {
    if (current_) current_->release_tail(used_);
  }

 private:
  page_size pages_;
  bool lock_;
  std::shared_ptr<anonymous_memory> current_;
  std::size_t used_ = 0;
};

}  // namespace rwkv
