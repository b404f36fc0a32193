#pragma once
// The command-line conventions of rwkv-cli, shared by its translation units: positional arguments and
// `--key value` options, numbers parsed strictly, usage errors told apart from other failures.

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <rwkv/core/error.hpp>

namespace rwkv_cli {

struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// `rwkv-cli CMD --help` (or -h) anywhere among a command's arguments: its help is printed, exit 0.
struct help_requested {};

// Positional arguments, `--key value` options and `--flag` switches. An option may be given several times when
// it is `repeatable` (all values are kept, in order); otherwise the last one wins.
struct args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;
  std::map<std::string, std::vector<std::string>> all;
  std::set<std::string> flags;

  args(int argc, char** argv, const std::set<std::string>& known, const std::set<std::string>& known_flags = {}) {
    for (int i = 2; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--help" || a == "-h") throw help_requested{};
      if (a.rfind("--", 0) == 0) {
        if (known_flags.count(a)) {
          flags.insert(a);
          continue;
        }
        if (!known.count(a)) throw usage_error("unknown option " + a);
        if (i + 1 >= argc) throw usage_error("option " + a + " needs a value");
        options[a] = argv[++i];
        all[a].push_back(options[a]);
      } else {
        positional.push_back(a);
      }
    }
  }

  std::optional<std::string> get(const std::string& k) const {
    auto it = options.find(k);
    return it == options.end() ? std::nullopt : std::optional(it->second);
  }
  bool has(const std::string& flag) const { return flags.count(flag) != 0; }
  std::vector<std::string> every(const std::string& k) const {
    auto it = all.find(k);
    return it == all.end() ? std::vector<std::string>{} : it->second;
  }
};

template <class T>
T parse_number(const std::string& s, const std::string& what) {
  T v{};
  const auto* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, v);
  if (ec != std::errc() || p != end) throw usage_error("invalid " + what + ": '" + s + "'");
  return v;
}

// The whole file, as bytes.
inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw rwkv::error(std::string("cannot open for reading: ") + std::strerror(errno), path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// rwkv-cli train (cli_train.cpp).
int cmd_train(int argc, char** argv);
extern const char* const train_usage;

}  // namespace rwkv_cli
