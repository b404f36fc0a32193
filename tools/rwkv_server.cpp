// rwkv-server: an OpenAI-compatible HTTP server over rwkv::serve::engine (continuous batching, state cache).
//
//   rwkv-server MODEL [--host 127.0.0.1] [--port 8080] [--slots N] [--threads N] [--precision P] [--api-key KEY]
//                     [--max-queue N] [--max-prompt-tokens N] [--state-cache-mib N] [--vocab PATH]
//
// Routes: POST /v1/completions, POST /v1/chat/completions (streamed as server-sent events with "stream": true),
// GET /v1/models, GET /health, GET /metrics (Prometheus text). Errors are OpenAI-shaped JSON
// ({"error": {"message", "type", "code"}}) with a 4xx status: 400 bad request, 401 wrong or missing API key,
// 404 unknown route, 413 body too large, 429 queue full (with Retry-After).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <deque>
#include <iostream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <rwkv/any_model.hpp>
#include <rwkv/core/thread_pool.hpp>
#include <rwkv/serve/engine.hpp>
#include <rwkv/serve/openai.hpp>
#include <rwkv/serve/state_cache.hpp>
#include <rwkv/tokenizer/bytes.hpp>
#include <rwkv/tokenizer/world.hpp>

#include "cli_args.hpp"
#include "cli_data.hpp"

// After Eigen: glibc's <resolv.h>, which httplib includes, defines a macro `_res` that Eigen uses as a name.
#include <httplib.h>

namespace {

using json = nlohmann::json;
using rwkv_cli::usage_error;

constexpr const char* usage = R"(usage: rwkv-server MODEL [OPTIONS]

An OpenAI-compatible HTTP server: POST /v1/completions, POST /v1/chat/completions (streaming with
"stream": true), GET /v1/models, GET /health, GET /metrics.

OPTIONS (defaults in brackets):
  --host H [127.0.0.1]       address to listen on (loopback unless told otherwise)
  --port P [8080]            0: any free port (printed on start)
  --slots N [8]              sequences decoded together (continuous batching)
  --max-queue N [64]         requests waiting for a slot; beyond it: 429 with Retry-After
  --threads N [all]          threads for the matrix products
  --precision P [f32]        weight storage: f32, bf16, f16, q8, q4
  --api-key KEY              require "Authorization: Bearer KEY" (also RWKV_SERVER_API_KEY)
  --max-prompt-tokens N [8192]   longer prompts are refused (400)
  --max-body-kib N [1024]    larger request bodies are refused (413)
  --state-cache-mib N [256]  states kept by token prefix for follow-up turns (0: off)
  --vocab PATH               World vocabulary file (default: the bundled one)
)";

// ---- errors ----

using http_error = rwkv::serve::openai::request_error;
using rwkv::serve::openai::bad_request;

// Generated text may hold bytes that are not UTF-8 (a byte-level model's stray bytes): they become U+FFFD.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_error(httplib::Response& res, const http_error& e) {
  res.status = e.status;
  res.set_content(dump(json{{"error", {{"message", e.message}, {"type", e.type}, {"code", e.code}}}}),
                  "application/json");
}

struct server_options {
  std::size_t max_prompt_tokens = 8192;
  std::string api_key, model_id;
};

// Streamed pieces from the engine's thread to the HTTP thread that writes them.
struct channel {
  std::mutex m;
  std::condition_variable cv;
  std::deque<std::string> pieces;
  std::optional<rwkv::serve::outcome> done;

  void push(std::string_view s) {
    {
      std::lock_guard lock(m);
      pieces.emplace_back(s);
    }
    cv.notify_all();
  }
  void finish(const rwkv::serve::outcome& o) {
    {
      std::lock_guard lock(m);
      done = o;
    }
    cv.notify_all();
  }
};

const char* finish_reason(const rwkv::serve::outcome& o) {
  return o.result.reason == rwkv::stop_reason::max_tokens ? "length" : "stop";
}

std::string completion_id(std::uint64_t n) { return "cmpl-rwkvpp-" + std::to_string(n); }

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

template <class Tokenizer>
class server {
 public:
  server(const rwkv::any_model& model, const Tokenizer& tok, rwkv::serve::engine_options eo, server_options so)
      : model_(model), tok_(tok), o_(std::move(so)), engine_(model, tok, eo), started_(clock::now()) {}

  void routes(httplib::Server& http) {
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (o_.api_key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
      const std::string want = "Bearer " + o_.api_key;
      const std::string got = req.get_header_value("Authorization");
      if (!constant_time_equal(got, want)) {
        send_error(res, {401, "missing or wrong API key (Authorization: Bearer KEY)", "authentication_error",
                         "invalid_api_key"});
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    http.Get("/health", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"status":"ok"})", "application/json");
    });
    http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(
          dump(json{
              {"object", "list"},
              {"data",
               json::array(
                   {{{"id", o_.model_id}, {"object", "model"}, {"created", unix_now()}, {"owned_by", "rwkvpp"}}})}}),
          "application/json");
    });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics(), "text/plain; version=0.0.4");
    });
    http.Post("/v1/completions",
              [this](const httplib::Request& req, httplib::Response& res) { handle(req, res, false); });
    http.Post("/v1/chat/completions",
              [this](const httplib::Request& req, httplib::Response& res) { handle(req, res, true); });
    // A handler that throws answers 500 with the message; the server goes on.
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unknown error";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      send_error(res, {500, what, "server_error", "internal_error"});
    });
    http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty()) return;
      if (res.status == 404) send_error(res, {404, "no such route", "invalid_request_error", "not_found"});
      if (res.status == 413)
        send_error(res, {413, "the request body is too large", "invalid_request_error", "body_too_large"});
    });
  }

 private:
  using clock = std::chrono::steady_clock;

  static bool constant_time_equal(const std::string& a, const std::string& b) {
    unsigned char diff = a.size() == b.size() ? 0 : 1;
    const std::size_t n = std::max(a.size(), b.size());
    for (std::size_t i = 0; i < n; ++i) {
      const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
      const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
      diff |= static_cast<unsigned char>(x ^ y);
    }
    return diff == 0;
  }

  void handle(const httplib::Request& http_req, httplib::Response& res, bool chat) {
    rwkv::serve::openai::parsed_request p;
    try {
      p = rwkv::serve::openai::parse_request(http_req.body, chat, tok_, model_.info().vocab,
                                             {.max_prompt_tokens = o_.max_prompt_tokens});
    } catch (const http_error& e) {
      return send_error(res, e);
    } catch (const std::exception& e) {
      return send_error(res, bad_request(e.what()));
    }
    const auto serial = ++serial_;
    const std::string id = completion_id(serial);
    auto ch = std::make_shared<channel>();
    p.req.on_text = [ch](std::string_view s) {
      ch->push(s);
      return true;
    };
    p.req.on_done = [ch](const rwkv::serve::outcome& o) { ch->finish(o); };
    const std::size_t prompt_tokens = p.req.prompt.size();
    std::optional<std::uint64_t> ticket;
    try {
      ticket = engine_.submit(std::move(p.req));
    } catch (const std::exception& e) {
      return send_error(res, bad_request(e.what()));
    }
    if (!ticket) {
      res.set_header("Retry-After", "1");
      return send_error(res, {429, "the server is busy: every slot is taken and the queue is full", "rate_limit_error",
                              "queue_full"});
    }
    const std::uint64_t t = *ticket;
    if (!p.stream) {
      // The answer is one JSON object once the request has ended. Until then a space (JSON allows leading
      // whitespace) goes out every second: a client that went away makes that write fail, and its slot is freed.
      res.set_chunked_content_provider(
          "application/json",
          [this, ch, chat, id, t, prompt_tokens](std::size_t, httplib::DataSink& sink) {
            std::unique_lock lock(ch->m);
            ch->cv.wait_for(lock, std::chrono::seconds(1), [&] { return ch->done.has_value(); });
            if (!ch->done) {
              lock.unlock();
              if (!sink.write(" ", 1)) {
                engine_.cancel(t);
                return false;
              }
              return true;
            }
            const auto o = *ch->done;
            lock.unlock();
            const std::string out =
                o.error.empty()
                    ? dump(completion(o, chat, id, prompt_tokens))
                    : dump(json{
                          {"error", {{"message", o.error}, {"type", "server_error"}, {"code", "generation_failed"}}}});
            sink.write(out.data(), out.size());
            sink.done();
            return true;
          },
          [this, t](bool success) {
            if (!success) engine_.cancel(t);
          });
      return;
    }
    // Server-sent events: a chunk per piece of text, then one with the finish reason, then [DONE].
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, ch, chat, id, t, prompt_tokens, usage = p.include_usage, first = true](std::size_t,
                                                                                      httplib::DataSink& sink) mutable {
          auto event = [&](const json& delta, const json& finish) {
            json choice = {{"index", 0}, {"finish_reason", finish}};
            if (chat)
              choice["delta"] = delta;
            else
              choice["text"] = delta.value("content", ""), choice["logprobs"] = nullptr;
            const std::string line = "data: " +
                                     dump(json{{"id", id},
                                               {"object", chat ? "chat.completion.chunk" : "text_completion"},
                                               {"created", unix_now()},
                                               {"model", o_.model_id},
                                               {"choices", json::array({choice})}}) +
                                     "\n\n";
            return sink.write(line.data(), line.size());
          };
          std::unique_lock lock(ch->m);
          ch->cv.wait_for(lock, std::chrono::milliseconds(250), [&] { return !ch->pieces.empty() || ch->done; });
          std::deque<std::string> pieces;
          pieces.swap(ch->pieces);
          const auto done = ch->done;
          lock.unlock();
          if (!sink.is_writable()) {
            engine_.cancel(t);  // the client went away: free its slot
            return false;
          }
          for (auto& piece : pieces) {
            if (chat && first) piece = trim_leading_space(piece);
            json delta = {{"content", piece}};
            if (chat && first) delta["role"] = "assistant";
            first = false;
            if (!event(delta, nullptr)) {
              engine_.cancel(t);
              return false;
            }
          }
          if (!done) return true;
          if (!done->error.empty()) {
            const std::string line =
                "data: " + dump(json{{"error", {{"message", done->error}, {"type", "server_error"}}}}) + "\n\n";
            sink.write(line.data(), line.size());
          } else {
            event(json::object(), finish_reason(*done));
            if (usage) {  // OpenAI's form: no choices, the counts
              const std::string line = "data: " +
                                       dump(json{{"id", id},
                                                 {"object", chat ? "chat.completion.chunk" : "text_completion"},
                                                 {"created", unix_now()},
                                                 {"model", o_.model_id},
                                                 {"choices", json::array()},
                                                 {"usage", usage_of(*done, prompt_tokens)}}) +
                                       "\n\n";
              sink.write(line.data(), line.size());
            }
          }
          const std::string end = "data: [DONE]\n\n";
          sink.write(end.data(), end.size());
          sink.done();
          return true;
        },
        [this, t](bool success) {
          if (!success) engine_.cancel(t);
        });
  }

  // The whole answer of a request that was not streamed.
  json completion(const rwkv::serve::outcome& o, bool chat, const std::string& id, std::size_t prompt_tokens) const {
    json choice = {{"index", 0}, {"finish_reason", finish_reason(o)}};
    if (chat) {
      choice["message"] = {{"role", "assistant"}, {"content", trim_leading_space(o.result.text)}};
    } else {
      choice["text"] = o.result.text;
      choice["logprobs"] = nullptr;
    }
    return {{"id", id},
            {"object", chat ? "chat.completion" : "text_completion"},
            {"created", unix_now()},
            {"model", o_.model_id},
            {"choices", json::array({choice})},
            {"usage", usage_of(o, prompt_tokens)}};
  }

  // OpenAI's usage object; prompt_tokens_details.cached_tokens: the prompt tokens the state cache covered.
  static json usage_of(const rwkv::serve::outcome& o, std::size_t prompt_tokens) {
    const auto generated = static_cast<std::int64_t>(o.result.tokens.size());
    return {{"prompt_tokens", prompt_tokens},
            {"completion_tokens", generated},
            {"total_tokens", static_cast<std::int64_t>(prompt_tokens) + generated},
            {"prompt_tokens_details", {{"cached_tokens", o.cached_tokens}}}};
  }

  // The chat format puts a space after "Assistant:", which is the model's first token.
  static std::string trim_leading_space(std::string s) {
    if (!s.empty() && s.front() == ' ') s.erase(0, 1);
    return s;
  }

  std::string metrics() const {
    const auto c = engine_.counters();
    const double up = std::chrono::duration<double>(clock::now() - started_).count();
    std::string out;
    auto line = [&](const char* name, const char* type, const char* help, double v) {
      out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + " " +
             std::to_string(v) + "\n";
    };
    line("rwkv_requests_total", "counter", "Requests accepted.", static_cast<double>(c.requests));
    line("rwkv_requests_completed_total", "counter", "Requests that ended normally.", static_cast<double>(c.completed));
    line("rwkv_requests_cancelled_total", "counter", "Requests cancelled (client gone).",
         static_cast<double>(c.cancelled));
    line("rwkv_requests_failed_total", "counter", "Requests that failed.", static_cast<double>(c.failed));
    line("rwkv_requests_rejected_total", "counter", "Requests refused with 429.", static_cast<double>(c.rejected));
    line("rwkv_prompt_tokens_total", "counter", "Prompt tokens of ended requests.",
         static_cast<double>(c.prompt_tokens));
    line("rwkv_prompt_tokens_cached_total", "counter", "Prompt tokens the state cache covered.",
         static_cast<double>(c.cached_prompt_tokens));
    line("rwkv_generated_tokens_total", "counter", "Tokens generated.", static_cast<double>(c.generated_tokens));
    line("rwkv_queue_length", "gauge", "Requests waiting for a slot.", static_cast<double>(c.queued));
    line("rwkv_slots_busy", "gauge", "Slots in use.", static_cast<double>(c.active));
    line("rwkv_slots", "gauge", "Slots.", static_cast<double>(c.slots));
    line("rwkv_generated_tokens_per_second", "gauge", "Tokens generated per second since start.",
         up > 0 ? static_cast<double>(c.generated_tokens) / up : 0.0);
    if (const auto* cache = engine_.options().cache) {
      const auto s = cache->stats();
      line("rwkv_state_cache_hits_total", "counter", "State cache lookups that found a prefix.",
           static_cast<double>(s.hits));
      line("rwkv_state_cache_misses_total", "counter", "State cache lookups that found nothing.",
           static_cast<double>(s.misses));
      line("rwkv_state_cache_bytes", "gauge", "Bytes of cached states.", static_cast<double>(s.bytes));
      line("rwkv_state_cache_entries", "gauge", "Cached states.", static_cast<double>(s.entries));
    }
    return out;
  }

  const rwkv::any_model& model_;
  const Tokenizer& tok_;
  server_options o_;
  rwkv::serve::engine<Tokenizer> engine_;
  clock::time_point started_;
  std::atomic<std::uint64_t> serial_{0};
};

httplib::Server* running = nullptr;

std::size_t size_option(const rwkv_cli::args& a, const std::string& k, std::size_t fallback) {
  const auto v = a.get(k);
  return v ? rwkv_cli::parse_number<std::size_t>(*v, k) : fallback;
}

template <class Tokenizer>
int serve(const rwkv::any_model& model, const Tokenizer& tok, const rwkv_cli::args& a, rwkv::thread_pool* pool,
          rwkv::serve::state_cache* cache, const std::string& model_id) {
  rwkv::serve::engine_options eo;
  eo.slots = size_option(a, "--slots", 8);
  eo.max_queue = size_option(a, "--max-queue", 64);
  eo.pool = pool;
  eo.cache = cache;
  server_options so;
  so.max_prompt_tokens = size_option(a, "--max-prompt-tokens", 8192);
  so.api_key = a.get("--api-key").value_or("");
  if (so.api_key.empty())
    if (const char* k = std::getenv("RWKV_SERVER_API_KEY")) so.api_key = k;
  so.model_id = model_id;
  server<Tokenizer> s(model, tok, eo, so);

  httplib::Server http;
  // One HTTP thread per streaming client and per waiting request, plus some for /metrics and refusals.
  const std::size_t workers = eo.slots + eo.max_queue + 8;
  http.new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
  http.set_payload_max_length(size_option(a, "--max-body-kib", 1024) * 1024);
  http.set_read_timeout(10, 0);  // a client that sends its request slowly is dropped (slow-loris)
  http.set_write_timeout(30, 0);
  http.set_keep_alive_max_count(100);
  s.routes(http);

  const std::string host = a.get("--host").value_or("127.0.0.1");
  const int port = static_cast<int>(size_option(a, "--port", 8080));
  const int bound = port == 0 ? http.bind_to_any_port(host) : (http.bind_to_port(host, port) ? port : -1);
  if (bound < 0) throw rwkv::error("cannot listen on " + host + ":" + std::to_string(port));
  std::cout << "rwkv-server: listening on http://" << host << ":" << bound << " (" << model_id << ", " << eo.slots
            << " slots)" << std::endl;
  running = &http;
  std::signal(SIGINT, [](int) {
    if (running) running->stop();
  });
  std::signal(SIGTERM, [](int) {
    if (running) running->stop();
  });
  http.listen_after_bind();
  running = nullptr;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
      std::cout << usage;
      return argc < 2 ? 2 : 0;
    }
    // rwkv_cli::args reads from argv[2]: the model is argv[1].
    const rwkv_cli::args a(argc, argv,
                           {"--host", "--port", "--slots", "--max-queue", "--threads", "--precision", "--api-key",
                            "--max-prompt-tokens", "--max-body-kib", "--state-cache-mib", "--vocab"});
    if (!a.positional.empty()) throw usage_error("unexpected argument '" + a.positional.front() + "'");
    const std::string path = argv[1];
    const auto model = rwkv::any_model::load(path, rwkv::parse_storage(a.get("--precision").value_or("f32")));
    const std::size_t threads = size_option(a, "--threads", std::max(1u, std::thread::hardware_concurrency()));
    std::optional<rwkv::thread_pool> pool;
    if (threads > 1) pool.emplace(threads);
    std::optional<rwkv::serve::state_cache> cache;
    if (const auto mib = size_option(a, "--state-cache-mib", 256); mib > 0) cache.emplace(mib << 20);
    const std::string id = std::filesystem::path(path).stem().string();
    auto* p = pool ? &*pool : nullptr;
    auto* c = cache ? &*cache : nullptr;
    if (model.info().vocab == rwkv::byte_tokenizer::vocab_size)
      return serve(model, rwkv::byte_tokenizer{}, a, p, c, id);
    const rwkv::world_tokenizer tok(a.get("--vocab").value_or(rwkv_cli::default_vocab_path()));
    return serve(model, tok, a, p, c, id);
  } catch (const rwkv_cli::help_requested&) {
    std::cout << usage;
    return 0;
  } catch (const usage_error& e) {
    std::cerr << "rwkv-server: " << e.what() << " (rwkv-server --help shows the usage)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "rwkv-server: error: " << e.what() << "\n";
    return 1;
  }
}
