// The hot path does not allocate: after a warm-up step, decoding with a caller's workspace touches the heap zero
// times, for every version, storage type and thread count (malloc and operator new are counted in every thread).
// Built only without sanitizers, which interpose malloc themselves.
#define BOOST_TEST_MODULE allocation
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <new>

#include <sys/resource.h>

#include <rwkv/init/builder.hpp>
#include <rwkv/rwkv.hpp>

#include "../support/golden.hpp"

extern "C" void* __libc_malloc(std::size_t);
extern "C" void* __libc_calloc(std::size_t, std::size_t);
extern "C" void* __libc_realloc(void*, std::size_t);
extern "C" void* __libc_memalign(std::size_t, std::size_t);
extern "C" void __libc_free(void*);

namespace {
std::atomic<bool> counting{false};
std::atomic<long> allocations{0};
void note() {
  if (counting.load(std::memory_order_relaxed)) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    if (std::getenv("RWKV_ALLOC_TRAP")) __builtin_trap();  // find the allocation under a debugger
  }
}
}  // namespace

// glibc lets the program define the malloc family; these count and forward to glibc's own.
extern "C" {
void* malloc(std::size_t n) {
  note();
  return __libc_malloc(n);
}
void* calloc(std::size_t n, std::size_t m) {
  note();
  return __libc_calloc(n, m);
}
void* realloc(void* p, std::size_t n) {
  note();
  return __libc_realloc(p, n);
}
void free(void* p) { __libc_free(p); }
int posix_memalign(void** out, std::size_t align, std::size_t n) {
  note();
  if (align < sizeof(void*) || (align & (align - 1)) != 0) return EINVAL;
  void* p = __libc_memalign(align, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
void* memalign(std::size_t align, std::size_t n) {
  note();
  return __libc_memalign(align, n);
}
void* aligned_alloc(std::size_t align, std::size_t n) {
  note();
  return __libc_memalign(align, n);
}
}

void* operator new(std::size_t n) {
  note();
  if (void* p = __libc_malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { __libc_free(p); }
void operator delete(void* p, std::size_t) noexcept { __libc_free(p); }

namespace {

using namespace rwkv;
using rwkv::test::data_path;

// Allocations during `steps` decode steps after two warm-up steps.
template <class M>
long decode_allocations(const std::string& file, thread_pool* pool, int steps = 6) {
  const auto m = M::load(data_path(file));
  auto state = m.make_state();
  workspace ws;
  std::int32_t token = 1;
  for (int i = 0; i < 2; ++i) token = static_cast<std::int32_t>(m.step(token, state, ws, pool)[0] > 0 ? 3 : 5);
  allocations = 0;
  counting = true;
  float sink = 0.f;
  for (int i = 0; i < steps; ++i) {
    const auto logits = m.step(token, state, ws, pool);
    sink += logits[0];
    token = static_cast<std::int32_t>((token * 7 + i) % 200);
  }
  counting = false;
  BOOST_TEST(std::isfinite(sink));
  return allocations.load();
}

template <class M>
void check_all_pools(const std::string& file) {
  thread_pool two(2), three(3);
  for (thread_pool* pool : {static_cast<thread_pool*>(nullptr), &two, &three}) {
    const long n = decode_allocations<M>(file, pool);
    BOOST_TEST(n == 0, file << " with " << (pool ? pool->size() : 1) << " thread(s): " << n << " allocations");
  }
}

BOOST_AUTO_TEST_CASE(the_counter_counts) {
  allocations = 0;
  counting = true;
  auto* p = new std::vector<float>(100);
  void* q = std::malloc(64);
  counting = false;
  BOOST_TEST(p->size() == 100u);  // the results are used, so the compiler may not drop the allocations
  BOOST_TEST(q != nullptr);
  std::free(q);
  delete p;
  BOOST_TEST(allocations.load() == 3);  // the vector object, its buffer, the malloc
}

BOOST_AUTO_TEST_CASE(v4_decode_allocates_nothing) { check_all_pools<v4::Model<f32>>("v4-dev.model.safetensors"); }
BOOST_AUTO_TEST_CASE(v5_1_decode_allocates_nothing) { check_all_pools<v5::Model<f32>>("v5.1-dev.model.safetensors"); }
BOOST_AUTO_TEST_CASE(v5_2_decode_allocates_nothing) { check_all_pools<v5::Model<f32>>("v5.2-dev.model.safetensors"); }
BOOST_AUTO_TEST_CASE(v6_decode_allocates_nothing) { check_all_pools<v6::Model<f32>>("v6-dev.model.safetensors"); }
BOOST_AUTO_TEST_CASE(v7_decode_allocates_nothing) { check_all_pools<v7::Model<f32>>("v7-dev.model.safetensors"); }
BOOST_AUTO_TEST_CASE(narrow_storage_decode_allocates_nothing) {
  check_all_pools<v7::Model<bf16_weights>>("v7-dev.model.safetensors");
  check_all_pools<v7::Model<q8_weights>>("v7-dev.model.safetensors");
  check_all_pools<v7::Model<q4_weights>>("v7-dev.model.safetensors");
}

// Prefill with a workspace keeps its memory: after the first call of a length, later calls of that length touch no
// fresh pages (a 0.1B-width model, 2 layers; the kernel counts minor page faults per process). Fresh T x C matrices
// per layer used to fault in on every call (a quarter of prefill time in a VM where faults are expensive).
BOOST_AUTO_TEST_CASE(prefill_reuses_its_memory) {
  rwkv::init::builder b({.n_layer = 2, .n_embd = 768, .vocab = 1000, .head_size = 64}, 1, rwkv::init::style::exercised);
  rwkv::init::model<v7::Block<>>(b);
  auto reader = b.reader();
  const auto m = v7::Model<f32>::from_reader(reader);
  std::vector<std::int32_t> tokens(512);
  for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<std::int32_t>((i * 37) % 1000);
  thread_pool pool(2);
  workspace ws;
  auto minor_faults = [] {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return u.ru_minflt;
  };
  for (int warm = 0; warm < 2; ++warm) {
    auto s = m.make_state();
    m.forward(tokens, s, logits_for::last, ws, &pool);
  }
  long worst = 0;
  for (int call = 0; call < 3; ++call) {
    auto s = m.make_state();
    const long before = minor_faults();
    m.forward(tokens, s, logits_for::last, ws, &pool);
    worst = std::max(worst, minor_faults() - before);
  }
  // One T x C float matrix is 1.5 MiB = 384 pages; a handful of stray pages (thread stacks, the allocator's own
  // bookkeeping) is tolerated, a matrix is not.
  BOOST_TEST(worst < 64, "minor page faults in one 512-token prefill after warm-up: " << worst);
}

}  // namespace
