#pragma once
// Where rwkv-cli finds its default model (the bundled RWKV-7, data/models/) and the World vocabulary: an installed
// rwkv-cli in share/rwkvpp/ of its own installation (RWKV_CLI_DATA_DIR, relative to the directory of the executable), a
// rwkv-cli in a build tree in the source tree it was built from (RWKV_DEFAULT_MODEL, RWKV_DEFAULT_VOCAB). The
// vocabulary can also be named by the environment variable RWKV_WORLD_VOCAB, as for world_tokenizer::bundled().

#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace rwkv_cli {

// The directory of the running executable (empty when it cannot be told).
inline std::filesystem::path executable_dir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::path() : exe.parent_path();
}

// `file` in the installation's data directory when it is there, else `fallback`.
inline std::string installed_or(const char* file, const char* fallback) {
#ifdef RWKV_CLI_DATA_DIR
  if (const auto dir = executable_dir(); !dir.empty()) {
    const auto p = (dir / RWKV_CLI_DATA_DIR / file).lexically_normal();
    std::error_code ec;
    if (std::filesystem::is_regular_file(p, ec)) return p.string();
  }
#else
  (void)file;
#endif
  return fallback;
}

inline std::string default_model_path() { return installed_or(RWKV_DEMO_MODEL_FILE, RWKV_DEFAULT_MODEL); }

inline std::string default_vocab_path() {
  if (const char* env = std::getenv("RWKV_WORLD_VOCAB"); env && *env) return env;
  return installed_or("rwkv_vocab_v20230424.txt", RWKV_DEFAULT_VOCAB);
}

}  // namespace rwkv_cli
