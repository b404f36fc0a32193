// Load test of rwkv-server on loopback: N concurrent streaming clients (by default 1, 8, 32, 64), each asking for
// a fixed number of tokens, reporting aggregate decode tokens/s, time to first token and inter-token latency
// (p50, p99) and errors; then a conversation's second turn at several history lengths; then, with --soak-seconds S, S
// seconds of clients that connect, stream or not, and leave at random, checking that the server ends with no busy slot
// and that its resident memory stays flat.
//
//   build/benchmarks/server_load --model random-0.1b.safetensors [--precision bf16] [--threads 2]
//                                [--clients 1,8,32,64] [--tokens 64] [--history 100,4000] [--soak-seconds 600]
//
// --history W,...: for each W, a chat's second turn after a first turn of W words: the time to its first token
// (the state cache covers the history) beside the first turn's (cold, the whole history prefilled); medians of 5.
//
// It starts the rwkv-server built beside it (--slots = the largest client count) and stops it at the end.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

namespace {

using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

struct options {
  std::string server = RWKV_SERVER, model, precision = "bf16";
  int threads = 2, tokens = 64, soak_seconds = 0;
  std::vector<int> clients{1, 8, 32, 64}, history{100, 4000};
};

std::vector<int> int_list(const std::string& v) {
  std::vector<int> out;
  std::stringstream ss(v);
  for (std::string x; std::getline(ss, x, ',');) out.push_back(std::stoi(x));
  return out;
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--model")
      o.model = v;
    else if (k == "--server")
      o.server = v;
    else if (k == "--precision")
      o.precision = v;
    else if (k == "--threads")
      o.threads = std::stoi(v);
    else if (k == "--tokens")
      o.tokens = std::stoi(v);
    else if (k == "--soak-seconds")
      o.soak_seconds = std::stoi(v);
    else if (k == "--clients")
      o.clients = int_list(v);
    else if (k == "--history")
      o.history = v == "none" ? std::vector<int>{} : int_list(v);
    else {
      throw std::runtime_error("unknown option " + k);
    }
  }
  if (o.model.empty()) throw std::runtime_error("--model MODEL is required (e.g. rwkv-cli make-random --version 7)");
  return o;
}

struct server {
  pid_t pid = -1;
  int port = 0;
  server(const options& o, int slots) {
    int out[2];
    if (pipe(out) != 0) throw std::runtime_error("pipe");
    pid = fork();
    if (pid == 0) {
      dup2(out[1], STDOUT_FILENO);
      close(out[0]);
      const std::string s = std::to_string(slots), t = std::to_string(o.threads);
      execl(o.server.c_str(), o.server.c_str(), o.model.c_str(), "--port", "0", "--slots", s.c_str(), "--max-queue",
            "64", "--threads", t.c_str(), "--precision", o.precision.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(out[1]);
    FILE* f = fdopen(out[0], "r");
    char line[512] = {};
    if (!fgets(line, sizeof line, f)) throw std::runtime_error("rwkv-server did not start");
    const std::string l(line);
    port = std::stoi(l.substr(l.rfind(':', l.find(" (")) + 1));
  }
  ~server() {
    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
  }
  long rss_kib() const {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    for (std::string l; std::getline(f, l);)
      if (l.rfind("VmRSS:", 0) == 0) return std::stol(l.substr(6));
    return -1;
  }
};

struct stream_result {
  bool ok = false;
  int tokens = 0, prompt_tokens = 0, cached_tokens = 0;
  std::string text, error;
  double ttft = 0;
  std::vector<double> gaps;  // seconds between successive text events
};

// One streamed request (body: its fields besides the streaming ones); `leave_after` events > 0: the client goes
// away after that many.
stream_result stream_request(int port, const std::string& path, json body, int leave_after = 0) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(600, 0);
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  stream_result r;
  std::string buffer;
  const auto start = clock_type::now();
  auto last = start;
  int events = 0;
  req.content_receiver = [&](const char* data, std::size_t n, std::uint64_t, std::uint64_t) {
    buffer.append(data, n);
    for (auto end = buffer.find("\n\n"); end != std::string::npos; end = buffer.find("\n\n")) {
      const std::string e = buffer.substr(6, end - 6);
      buffer.erase(0, end + 2);
      if (e == "[DONE]") {
        r.ok = true;
        continue;
      }
      const auto j = json::parse(e, nullptr, false);
      if (j.is_discarded() || !j.is_object()) return false;
      if (j.contains("error")) {  // the server's error event
        r.error = j["error"].dump();
        return false;
      }
      if (j.contains("usage")) {
        r.tokens = j["usage"]["completion_tokens"].get<int>();
        r.prompt_tokens = j["usage"]["prompt_tokens"].get<int>();
        r.cached_tokens = j["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>();
        continue;
      }
      const auto& choice = j["choices"][0];
      r.text += choice.contains("delta") ? choice["delta"].value("content", "") : choice.value("text", "");
      const auto now = clock_type::now();
      if (events == 0)
        r.ttft = std::chrono::duration<double>(now - start).count();
      else
        r.gaps.push_back(std::chrono::duration<double>(now - last).count());
      last = now;
      if (leave_after > 0 && ++events >= leave_after) return false;
      if (leave_after == 0) ++events;
    }
    return true;
  };
  httplib::Response res;
  httplib::Error err;
  const bool sent = c.send(req, res, err);
  if (leave_after > 0)
    r.ok = true;  // it left on purpose
  else
    r.ok = r.ok && sent && res.status == 200 && r.error.empty();
  if (!r.ok && leave_after == 0)
    std::fprintf(stderr, "request failed: %s\n",
                 !r.error.empty() ? r.error.c_str()
                 : !sent          ? httplib::to_string(err).c_str()
                                  : res.body.c_str());
  return r;
}

// A sampled completion of `prompt`.
stream_result stream_once(int port, const std::string& prompt, int max_tokens, std::uint64_t seed,
                          int leave_after = 0) {
  return stream_request(
      port, "/v1/completions",
      {{"prompt", prompt}, {"max_tokens", max_tokens}, {"seed", seed}, {"temperature", 1.0}, {"top_p", 0.9}},
      leave_after);
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

double metric(int port, const std::string& name) {
  httplib::Client c("127.0.0.1", port);
  const auto r = c.Get("/metrics");
  if (!r) return -1;
  const auto at = r->body.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::stod(r->body.substr(at + name.size() + 2));
}

}  // namespace

int main(int argc, char** argv) try {
  const auto o = parse(argc, argv);
  const int slots = *std::max_element(o.clients.begin(), o.clients.end());
  server s(o, slots);
  std::printf("rwkv-server %s, %s weights, %d threads, %d slots; %d tokens per request\n", o.model.c_str(),
              o.precision.c_str(), o.threads, slots, o.tokens);
  std::printf("%8s %14s %12s %12s %12s %12s %7s\n", "clients", "tokens/s", "TTFT p50", "TTFT p99", "ITL p50", "ITL p99",
              "errors");
  stream_once(s.port, "Warm-up.", 8, 1);
  for (const int n : o.clients) {
    std::vector<stream_result> results(static_cast<std::size_t>(n));
    std::vector<std::thread> threads;
    const auto start = clock_type::now();
    for (int i = 0; i < n; ++i)
      threads.emplace_back([&, i] {
        results[static_cast<std::size_t>(i)] =
            stream_once(s.port, "The history of the world, part " + std::to_string(i) + ":", o.tokens,
                        static_cast<std::uint64_t>(i));
      });
    for (auto& t : threads) t.join();
    const double wall = std::chrono::duration<double>(clock_type::now() - start).count();
    std::vector<double> ttft, itl;
    int tokens = 0, errors = 0;
    for (const auto& r : results) {
      if (!r.ok) ++errors;
      tokens += r.tokens;
      ttft.push_back(r.ttft);
      itl.insert(itl.end(), r.gaps.begin(), r.gaps.end());
    }
    std::printf("%8d %14.1f %10.1f ms %10.1f ms %10.1f ms %10.1f ms %7d\n", n, tokens / wall,
                1e3 * percentile(ttft, 0.5), 1e3 * percentile(ttft, 0.99), 1e3 * percentile(itl, 0.5),
                1e3 * percentile(itl, 0.99), errors);
  }
  // A conversation's second turn: the first turn's prompt holds about `words` words of history; the second turn
  // sends it back with the reply and a short question, so the state cache covers all but the new tokens.
  if (!o.history.empty())
    std::printf("\n%10s %14s %16s %18s %14s\n", "history", "prompt tokens", "cached tokens", "TTFT cold turn 1",
                "TTFT turn 2");
  for (const int words : o.history) {
    std::vector<double> cold, warm;
    stream_result last;
    for (int conversation = 0; conversation < 5; ++conversation) {
      std::string text;
      std::mt19937 rng(static_cast<unsigned>(words * 10 + conversation));
      static const char* vocabulary[] = {"river", "garden", "stone",   "light", "water", "the",    "of",    "and",
                                         "north", "valley", "morning", "gold",  "ships", "winter", "bread", "song"};
      for (int w = 0; w < words; ++w) text += std::string(w ? " " : "") + vocabulary[rng() % 16];
      json messages = json::array({{{"role", "user"}, {"content", text}}});
      const json first_body = {{"messages", messages}, {"max_tokens", 8}, {"seed", conversation}};
      const auto first = stream_request(s.port, "/v1/chat/completions", first_body);
      messages.push_back({{"role", "assistant"}, {"content", first.text.empty() ? "Yes." : first.text}});
      messages.push_back({{"role", "user"}, {"content", "Tell me more."}});
      last = stream_request(s.port, "/v1/chat/completions",
                            {{"messages", messages}, {"max_tokens", 8}, {"seed", conversation}});
      if (!first.ok || !last.ok) throw std::runtime_error("history: a turn failed");
      cold.push_back(first.ttft);
      warm.push_back(last.ttft);
    }
    std::printf("%10d %14d %16d %15.1f ms %11.1f ms\n", words, last.prompt_tokens, last.cached_tokens,
                1e3 * percentile(cold, 0.5), 1e3 * percentile(warm, 0.5));
  }
  if (o.soak_seconds > 0) {
    std::atomic<bool> stop{false};
    std::atomic<int> errors{0}, requests{0};
    long rss_start = 0;
    std::vector<std::thread> clients;
    const int n = std::min(slots, 16);
    for (int i = 0; i < n; ++i)
      clients.emplace_back([&, i] {
        std::mt19937 rng(static_cast<unsigned>(i));
        while (!stop) {
          const int tokens = 1 + static_cast<int>(rng() % 64);
          const int leave = rng() % 4 == 0 ? 1 + static_cast<int>(rng() % 8) : 0;
          const auto r = stream_once(s.port, "Soak " + std::to_string(rng() % 1000), tokens, rng(), leave);
          ++requests;
          if (!r.ok) ++errors;
        }
      });
    const auto start = clock_type::now();
    std::this_thread::sleep_for(std::chrono::seconds(std::min(60, o.soak_seconds / 10 + 1)));
    rss_start = s.rss_kib();  // after warm-up
    while (clock_type::now() - start < std::chrono::seconds(o.soak_seconds))
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    stop = true;
    for (auto& t : clients) t.join();
    std::this_thread::sleep_for(std::chrono::seconds(2));
    const long rss_end = s.rss_kib();
    const double busy = metric(s.port, "rwkv_slots_busy"), queued = metric(s.port, "rwkv_queue_length");
    std::printf(
        "soak: %d s, %d requests (a quarter leaving early), %d errors, slots busy at the end %.0f, queued "
        "%.0f, RSS %ld -> %ld KiB (%+.1f%%)\n",
        o.soak_seconds, requests.load(), errors.load(), busy, queued, rss_start, rss_end,
        100.0 * (static_cast<double>(rss_end) / static_cast<double>(rss_start) - 1));
    if (errors > 0 || busy != 0 || queued != 0) return 1;
  }
  return 0;
} catch (const std::exception& e) {
  std::cerr << "server_load: " << e.what() << "\n";
  return 1;
}
