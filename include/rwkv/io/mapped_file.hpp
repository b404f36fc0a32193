#pragma once
// Read-only view of a whole file: memory-mapped on POSIX (zero-copy weights), read into memory elsewhere.

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "rwkv/core/error.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define RWKV_HAVE_MMAP 1
#endif

namespace rwkv::io {

class mapped_file {
 public:
  static std::shared_ptr<const mapped_file> open(const std::filesystem::path& path) {
    return std::shared_ptr<const mapped_file>(new mapped_file(path));
  }

  // Wraps bytes already in memory (tests, fuzzers, embedded models); the bytes are copied.
  static std::shared_ptr<const mapped_file> from_bytes(std::span<const std::byte> bytes, std::string name) {
    auto f = std::shared_ptr<mapped_file>(new mapped_file());
    f->name_ = std::move(name);
    f->buffer_.assign(bytes.begin(), bytes.end());
    f->data_ = f->buffer_.data();
    f->size_ = f->buffer_.size();
    return f;
  }

  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;

  ~mapped_file() {
#ifdef RWKV_HAVE_MMAP
    if (mapped_ && size_ > 0) ::munmap(const_cast<std::byte*>(data_), size_);
#endif
  }

  std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
  const std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  const std::string& name() const noexcept { return name_; }

 private:
  mapped_file() = default;

  explicit mapped_file(const std::filesystem::path& path) : name_(path.string()) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) throw error("no such file", name_);
    if (std::filesystem::is_directory(path, ec)) throw error("is a directory, not a file", name_);
    if (!std::filesystem::is_regular_file(path, ec)) throw error("not a regular file", name_);
#ifdef RWKV_HAVE_MMAP
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw error(std::string("cannot open for reading: ") + std::strerror(errno), name_);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      ::close(fd);
      throw error("cannot stat", name_);
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        ::close(fd);
        throw error("cannot memory-map", name_);
      }
      data_ = static_cast<const std::byte*>(p);
      mapped_ = true;
    }
    ::close(fd);
#else
    std::ifstream in(path, std::ios::binary);
    if (!in) throw error("cannot open for reading", name_);
    in.seekg(0, std::ios::end);
    buffer_.resize(static_cast<std::size_t>(in.tellg()));
    in.seekg(0);
    in.read(reinterpret_cast<char*>(buffer_.data()), static_cast<std::streamsize>(buffer_.size()));
    if (!in) throw error("read failed", name_);
    data_ = buffer_.data();
    size_ = buffer_.size();
#endif
  }

  std::string name_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  bool mapped_ = false;
  std::vector<std::byte> buffer_;
};

}  // namespace rwkv::io
