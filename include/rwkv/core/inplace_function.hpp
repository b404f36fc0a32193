#pragma once
// A callable stored inside the object (no heap), for the hot path: the thread pool's job and the pieces of a
// fused parallel region are built on every decode step, and std::function would allocate for any capture
// larger than two pointers. A callable that does not fit is a compile error naming the capacity.

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace rwkv {

template <class Signature, std::size_t Capacity = 64>
class inplace_function;

template <class R, class... Args, std::size_t Capacity>
class inplace_function<R(Args...), Capacity> {
 public:
  inplace_function() noexcept = default;
  inplace_function(std::nullptr_t) noexcept {}

  template <class F, class D = std::decay_t<F>>
  requires(!std::is_same_v<D, inplace_function> && std::is_invocable_r_v<R, D&, Args...>)
      inplace_function(F&& f) {  // NOLINT: implicit, like std::function
    static_assert(sizeof(D) <= Capacity, "rwkv::inplace_function: the callable's captures exceed its capacity");
    static_assert(alignof(D) <= alignof(std::max_align_t), "rwkv::inplace_function: over-aligned callable");
    static_assert(std::is_nothrow_move_constructible_v<D>, "rwkv::inplace_function: the callable must be movable");
    ::new (static_cast<void*>(&storage_)) D(std::forward<F>(f));
    ops_ = &table<D>;
  }

  inplace_function(const inplace_function& o) : ops_(o.ops_) {
    if (ops_) ops_->copy(&o.storage_, &storage_);
  }
  inplace_function(inplace_function&& o) noexcept : ops_(o.ops_) {
    if (ops_) ops_->move(&o.storage_, &storage_);
  }
  inplace_function& operator=(const inplace_function& o) {
    if (this != &o) {
      reset();
      if (o.ops_) o.ops_->copy(&o.storage_, &storage_);  // may throw: this stays empty
      ops_ = o.ops_;
    }
    return *this;
  }
  inplace_function& operator=(inplace_function&& o) noexcept {
    if (this != &o) {
      reset();
      ops_ = o.ops_;
      if (ops_) ops_->move(&o.storage_, &storage_);
    }
    return *this;
  }
  inplace_function& operator=(std::nullptr_t) noexcept {
    reset();
    return *this;
  }
  ~inplace_function() { reset(); }

  explicit operator bool() const noexcept { return ops_ != nullptr; }

  R operator()(Args... args) const { return ops_->call(&storage_, std::forward<Args>(args)...); }

 private:
  struct vtable {
    R (*call)(const void*, Args&&...);
    void (*copy)(const void*, void*);
    void (*move)(void*, void*);
    void (*destroy)(void*);
  };
  template <class D>
  static constexpr vtable table = {[](const void* p, Args&&... a) -> R {
                                     return (*const_cast<D*>(static_cast<const D*>(p)))(std::forward<Args>(a)...);
                                   },
                                   [](const void* from, void* to) { ::new (to) D(*static_cast<const D*>(from)); },
                                   [](void* from, void* to) { ::new (to) D(std::move(*static_cast<D*>(from))); },
                                   [](void* p) { static_cast<D*>(p)->~D(); }};

  void reset() noexcept {
    if (ops_) ops_->destroy(&storage_);
    ops_ = nullptr;
  }

  alignas(std::max_align_t) mutable unsigned char storage_[Capacity];
  const vtable* ops_ = nullptr;
};

}  // namespace rwkv
