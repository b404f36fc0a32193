#pragma once
// Progress of long rwkv-cli operations on stderr: a bar redrawn in place on a terminal, plain lines every few
// seconds otherwise (logs, pipes), nothing with --quiet. RWKV_CLI_PROGRESS=bar|lines|none overrides the choice
// (lines report every update: what scripts and tests read).

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace rwkv_cli {

class progress {
 public:
  enum class style { none, bar, lines, every_line };

  progress(std::string label, bool quiet) : label_(std::move(label)), style_(choose(quiet)) {}
  progress(const progress&) = delete;
  progress& operator=(const progress&) = delete;
  ~progress() {
    if (style_ == style::bar && drawn_ && !finished_) std::fputc('\n', stderr);
  }

  // done of total units (bytes, tensors, layers); the call with done == total ends the bar.
  void operator()(std::int64_t done, std::int64_t total) {
    if (style_ == style::none || finished_ || total <= 0) return;
    const auto now = clock::now();
    const bool last = done >= total;
    const double since = std::chrono::duration<double>(now - last_).count();  // since the last output
    const int percent = static_cast<int>(100.0 * static_cast<double>(done) / static_cast<double>(total));
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    switch (style_) {
      case style::bar:
        if (!last && since < 0.1) return;
        draw_bar(percent, elapsed, last);
        last_ = now;
        break;
      case style::lines:  // a line every 2 s, and the end of an operation that printed any
        if (last ? !printed_ : since < 2.0) break;
        std::fprintf(stderr, "%s: %d%% (%.1f s)\n", label_.c_str(), percent, elapsed);
        printed_ = true;
        last_ = now;
        break;
      case style::every_line:
        std::fprintf(stderr, "%s: %d%% (%.1f s)\n", label_.c_str(), percent, elapsed);
        break;
      case style::none:
        break;
    }
    if (last) finished_ = true;
  }

 private:
  using clock = std::chrono::steady_clock;

  static style choose(bool quiet) {
    if (quiet) return style::none;
    if (const char* e = std::getenv("RWKV_CLI_PROGRESS")) {
      const std::string_view v = e;
      if (v == "none") return style::none;
      if (v == "bar") return style::bar;
      if (v == "lines") return style::every_line;
    }
    return ::isatty(STDERR_FILENO) ? style::bar : style::lines;
  }

  void draw_bar(int percent, double elapsed, bool last) {
    constexpr int width = 30;
    const int filled = percent * width / 100;
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r%s [%s] %3d%% %.1fs%s", label_.c_str(), bar.c_str(), percent, elapsed, last ? "\n" : "");
    std::fflush(stderr);
    drawn_ = true;
  }

  std::string label_;
  style style_;
  clock::time_point start_ = clock::now(), last_ = clock::now();
  bool drawn_ = false, printed_ = false, finished_ = false;
};

}  // namespace rwkv_cli
