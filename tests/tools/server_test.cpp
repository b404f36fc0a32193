// rwkv-server over real HTTP on loopback: the OpenAI-style routes answered and streamed, the same seed giving the
// same text, hostile requests answered with the right 4xx and a JSON error, a full server answering 429, and
// clients that go away freeing their slots.
#define BOOST_TEST_MODULE server
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/test/unit_test.hpp>

#include "../support/golden.hpp"

// After Eigen (golden.hpp): glibc's <resolv.h>, which httplib includes, defines a macro `_res` that Eigen uses.
#include <httplib.h>

namespace {

using json = nlohmann::json;
constexpr const char* api_key = "test-key-123";

// The server under test: rwkv-server on the tiny byte-level model, on a free loopback port.
struct server_process {
  pid_t pid = -1;
  int port = 0;

  // Throws (a global fixture has no test to fail) when the server does not start.
  server_process() {
    int out[2];
    if (pipe(out) != 0) throw std::runtime_error("pipe failed");
    pid = fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      dup2(out[1], STDOUT_FILENO);
      close(out[0]);
      const std::string model = rwkv::test::data_path("tiny-7v0.model.safetensors");
      execl(RWKV_SERVER, RWKV_SERVER, model.c_str(), "--port", "0", "--slots", "4", "--max-queue", "2", "--threads",
            "1", "--api-key", api_key, "--max-prompt-tokens", "200", "--max-body-kib", "64",
            static_cast<char*>(nullptr));
      _exit(127);
    }
    close(out[1]);
    FILE* f = fdopen(out[0], "r");
    char line[512] = {};
    if (!fgets(line, sizeof line, f)) throw std::runtime_error("rwkv-server printed nothing");
    const std::string s(line);
    if (s.find("listening on http://127.0.0.1:") == std::string::npos) throw std::runtime_error("rwkv-server: " + s);
    port = std::stoi(s.substr(s.rfind(':', s.find(" (")) + 1));
  }
  ~server_process() {
    if (pid > 0) {
      kill(pid, SIGTERM);
      int status = 0;
      waitpid(pid, &status, 0);
    }
  }
};

server_process* srv = nullptr;

struct global {
  server_process p;
  global() { srv = &p; }
  ~global() { srv = nullptr; }
};
BOOST_TEST_GLOBAL_FIXTURE(global);

httplib::Client client() {
  httplib::Client c("127.0.0.1", srv->port);
  c.set_read_timeout(60, 0);
  c.set_bearer_token_auth(api_key);
  return c;
}

json post(const std::string& path, const json& body, int want_status = 200) {
  auto c = client();
  const auto r = c.Post(path.c_str(), body.dump(), "application/json");
  BOOST_REQUIRE(r);
  BOOST_TEST(r->status == want_status, path << " " << body.dump() << " -> " << r->body);
  return json::parse(r->body);
}

// The error JSON of a refused request: status, and the code it names.
void refused(const std::string& path, const std::string& raw_body, int status, const std::string& code) {
  auto c = client();
  const auto r = c.Post(path.c_str(), raw_body, "application/json");
  BOOST_REQUIRE(r);
  BOOST_TEST_CONTEXT(raw_body.substr(0, 80)) {
    BOOST_TEST(r->status == status);
    const auto j = json::parse(r->body, nullptr, false);
    BOOST_REQUIRE(!j.is_discarded());
    BOOST_TEST(j["error"]["code"].get<std::string>() == code, r->body);
    BOOST_TEST(!j["error"]["message"].get<std::string>().empty());
  }
}

// The text of a streamed completion (server-sent events), and how it ended.
struct streamed {
  std::string text, finish_reason;
  bool done = false;           // "data: [DONE]" seen
  int completion_tokens = -1;  // from the usage event (stream_options.include_usage)
};

streamed stream(const std::string& path, const json& body, bool chat) {
  auto c = client();
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.set_header("Authorization", std::string("Bearer ") + api_key);
  std::string buffer;
  streamed out;
  req.content_receiver = [&](const char* data, std::size_t n, std::uint64_t, std::uint64_t) {
    buffer.append(data, n);
    for (auto end = buffer.find("\n\n"); end != std::string::npos; end = buffer.find("\n\n")) {
      const std::string event = buffer.substr(0, end);
      buffer.erase(0, end + 2);
      BOOST_REQUIRE(event.rfind("data: ", 0) == 0);
      const std::string payload = event.substr(6);
      if (payload == "[DONE]") {
        out.done = true;
        continue;
      }
      const auto j = json::parse(payload);
      if (j["choices"].empty()) {  // the usage event
        out.completion_tokens = j["usage"]["completion_tokens"].get<int>();
        continue;
      }
      const auto& ch = j["choices"][0];
      out.text += chat ? ch["delta"].value("content", "") : ch["text"].get<std::string>();
      if (!ch["finish_reason"].is_null()) out.finish_reason = ch["finish_reason"].get<std::string>();
    }
    return true;
  };
  httplib::Response res;
  httplib::Error err;
  BOOST_REQUIRE(c.send(req, res, err));
  BOOST_TEST(res.status == 200);
  BOOST_TEST(res.get_header_value("Content-Type").find("text/event-stream") != std::string::npos);
  return out;
}

double metric(const std::string& name) {
  auto c = client();
  const auto r = c.Get("/metrics");
  BOOST_REQUIRE(r);
  const auto at = r->body.find("\n" + name + " ");
  BOOST_REQUIRE_MESSAGE(at != std::string::npos, name << " missing from /metrics");
  return std::stod(r->body.substr(at + name.size() + 2));
}

}  // namespace

BOOST_AUTO_TEST_CASE(health_models_and_metrics) {
  httplib::Client anonymous("127.0.0.1", srv->port);
  const auto h = anonymous.Get("/health");  // no key needed
  BOOST_REQUIRE(h);
  BOOST_TEST(h->status == 200);
  auto c = client();
  const auto m = c.Get("/v1/models");
  BOOST_REQUIRE(m);
  const auto j = json::parse(m->body);
  BOOST_TEST(j["data"][0]["id"].get<std::string>() == "tiny-7v0.model");
  BOOST_TEST(metric("rwkv_slots") == 4.0);
}

BOOST_AUTO_TEST_CASE(completion_is_reproducible_with_a_seed) {
  const json body = {{"prompt", "In the beginning"}, {"max_tokens", 12}, {"seed", 7}, {"temperature", 0.8}};
  const auto a = post("/v1/completions", body), b = post("/v1/completions", body);
  BOOST_TEST(a["object"].get<std::string>() == "text_completion");
  const auto text = a["choices"][0]["text"].get<std::string>();
  BOOST_TEST(!text.empty());
  BOOST_TEST(text == b["choices"][0]["text"].get<std::string>());
  BOOST_TEST(a["usage"]["prompt_tokens"].get<int>() == 16);
  BOOST_TEST(a["usage"]["completion_tokens"].get<int>() <= 12);
  // Token ids as the prompt: the same request.
  std::vector<int> ids;
  for (unsigned char ch : std::string("In the beginning")) ids.push_back(ch);
  const auto c = post("/v1/completions", {{"prompt", ids}, {"max_tokens", 12}, {"seed", 7}, {"temperature", 0.8}});
  BOOST_TEST(c["choices"][0]["text"].get<std::string>() == text);
  // Streamed: the same text in pieces.
  auto sbody = body;
  sbody["stream"] = true;
  sbody["stream_options"] = {{"include_usage", true}};
  const auto s = stream("/v1/completions", sbody, false);
  BOOST_TEST(s.text == text);
  BOOST_TEST(s.done);
  BOOST_TEST(s.completion_tokens == a["usage"]["completion_tokens"].get<int>());
}

BOOST_AUTO_TEST_CASE(chat_completion_streams_what_it_answers) {
  const json body = {{"messages",
                      {{{"role", "system"}, {"content", "You answer briefly."}},
                       {{"role", "user"}, {"content", "Who made the sea?"}}}},
                     {"max_tokens", 16},
                     {"seed", 3},
                     {"stop", {"\n"}}};
  const auto whole = post("/v1/chat/completions", body);
  BOOST_TEST(whole["object"].get<std::string>() == "chat.completion");
  BOOST_TEST(whole["choices"][0]["message"]["role"].get<std::string>() == "assistant");
  const auto content = whole["choices"][0]["message"]["content"].get<std::string>();
  auto sbody = body;
  sbody["stream"] = true;
  const auto s = stream("/v1/chat/completions", sbody, true);
  BOOST_TEST(s.text == content);
  BOOST_TEST(s.done);
  BOOST_TEST((s.finish_reason == "stop" || s.finish_reason == "length"));
  BOOST_TEST(content.find('\n') == std::string::npos);  // the stop string ended it, unemitted
}

// A conversation's next turn starts from the state cached after the last one: the usage says how many prompt tokens
// the cache covered (at least the whole first turn), and the reply is the same as the same turn asked again.
BOOST_AUTO_TEST_CASE(a_follow_up_turn_resumes_from_the_cached_state) {
  json turn1 = {
      {"messages", {{{"role", "user"}, {"content", "Name the rivers of Eden."}}}}, {"max_tokens", 12}, {"seed", 9}};
  const auto first = post("/v1/chat/completions", turn1);
  const auto reply = first["choices"][0]["message"]["content"].get<std::string>();
  const auto first_prompt = first["usage"]["prompt_tokens"].get<int>();
  BOOST_TEST(first["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>() < first_prompt);
  BOOST_REQUIRE(!reply.empty());
  json turn2 = turn1;
  turn2["messages"].push_back({{"role", "assistant"}, {"content", reply}});
  turn2["messages"].push_back({{"role", "user"}, {"content", "And the first one?"}});
  turn2["seed"] = 10;
  const auto second = post("/v1/chat/completions", turn2);
  BOOST_TEST(second["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>() >= first_prompt);
  BOOST_TEST(second["usage"]["prompt_tokens"].get<int>() > first_prompt);
  const auto again = post("/v1/chat/completions", turn2);
  BOOST_TEST(again["choices"][0]["message"]["content"] == second["choices"][0]["message"]["content"]);
  BOOST_TEST(metric("rwkv_state_cache_hits_total") >= 2);
}

BOOST_AUTO_TEST_CASE(hostile_requests_get_json_errors) {
  refused("/v1/completions", "{not json", 400, "invalid_json");
  refused("/v1/completions", "[1, 2]", 400, "invalid_json");
  refused("/v1/completions", R"({"prompt": "a", "max_tokenz": 3})", 400, "unknown_field");
  refused("/v1/completions", R"({"prompt": "a", "max_tokens": "3"})", 400, "invalid_type");
  refused("/v1/completions", R"({"prompt": "a", "max_tokens": -1})", 400, "invalid_value");
  refused("/v1/completions", R"({"prompt": "a", "temperature": 9})", 400, "invalid_value");
  refused("/v1/completions", R"({"prompt": ""})", 400, "empty_prompt");
  refused("/v1/completions", R"({"prompt": [1, 256]})", 400, "token_out_of_range");
  refused("/v1/completions", R"({"prompt": 5})", 400, "invalid_type");
  refused("/v1/completions", R"({"prompt": "a", "stream_options": {"include_usage": 1}})", 400, "invalid_type");
  refused("/v1/completions", R"({"max_tokens": 3})", 400, "missing_field");
  refused("/v1/completions", json{{"prompt", std::string(300, 'a')}}.dump(), 400, "prompt_too_long");
  refused("/v1/completions", json{{"prompt", std::string(100 * 1024, 'a')}}.dump(), 413, "body_too_large");
  refused("/v1/chat/completions", R"({"messages": []})", 400, "invalid_messages");
  refused("/v1/chat/completions", R"({"messages": [{"role": "user", "content": ""}]})", 400, "invalid_messages");
  refused("/v1/chat/completions", R"({"messages": [{"role": "robot", "content": "hi"}]})", 400, "invalid_messages");
  refused("/v1/chat/completions", R"({"messages": [{"role": "user", "content": 3}]})", 400, "invalid_messages");
  refused("/v1/nothing", "{}", 404, "not_found");

  httplib::Client anonymous("127.0.0.1", srv->port);
  auto r = anonymous.Post("/v1/completions", R"({"prompt": "a"})", "application/json");
  BOOST_REQUIRE(r);
  BOOST_TEST(r->status == 401);
  anonymous.set_bearer_token_auth("test-key-124");
  r = anonymous.Post("/v1/completions", R"({"prompt": "a"})", "application/json");
  BOOST_REQUIRE(r);
  BOOST_TEST(r->status == 401);
  BOOST_TEST(metric("rwkv_slots_busy") == 0.0);  // nothing of the above took a slot
}

// Four slots and a queue of two: a seventh concurrent request gets 429 with Retry-After. Clients that go away
// free their slots.
BOOST_AUTO_TEST_CASE(a_full_server_answers_429_and_gone_clients_free_their_slots) {
  std::vector<std::thread> clients;
  std::atomic<int> started{0};
  std::atomic<bool> leave{false};
  for (int i = 0; i < 6; ++i)
    clients.emplace_back([&, i] {
      auto c = client();
      httplib::Request req;
      req.method = "POST";
      req.path = "/v1/completions";
      // Greedy: the tiny model then never samples the end-of-text token, and the stream lasts until it leaves.
      req.body = json{
          {"prompt", "Tell me everything " + std::to_string(i)},
          {"max_tokens", 1000000},
          {"stream", true},
          {"temperature",
           0}}.dump();
      req.set_header("Content-Type", "application/json");
      req.set_header("Authorization", std::string("Bearer ") + api_key);
      bool counted = false;
      req.content_receiver = [&](const char*, std::size_t, std::uint64_t, std::uint64_t) {
        if (!counted) ++started, counted = true;
        return !leave.load();
      };
      httplib::Response res;
      httplib::Error err;
      c.send(req, res, err);  // ends when the receiver returns false
    });
  // Streams start when their slot decodes; the two queued ones wait.
  for (int i = 0; i < 600 && (started.load() < 4 || metric("rwkv_queue_length") < 2); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  BOOST_TEST(metric("rwkv_slots_busy") == 4.0);
  BOOST_TEST(metric("rwkv_queue_length") == 2.0);
  auto c = client();
  const auto r = c.Post("/v1/completions", R"({"prompt": "a", "max_tokens": 1})", "application/json");
  BOOST_REQUIRE(r);
  BOOST_TEST(r->status == 429);
  BOOST_TEST(r->get_header_value("Retry-After") == "1");
  leave = true;
  for (auto& t : clients) t.join();
  for (int i = 0; i < 400 && (metric("rwkv_slots_busy") > 0 || metric("rwkv_queue_length") > 0); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  BOOST_TEST(metric("rwkv_slots_busy") == 0.0);
  BOOST_TEST(metric("rwkv_queue_length") == 0.0);
  BOOST_TEST(metric("rwkv_requests_cancelled_total") >= 6.0);
  // And the server still answers.
  const auto after = post("/v1/completions", {{"prompt", "a"}, {"max_tokens", 2}});
  BOOST_TEST(after["choices"][0]["finish_reason"].get<std::string>() == "length");
}

// A client that gives up on a request that is not streamed frees its slot too (the server's keep-alive spaces
// fail to reach it).
BOOST_AUTO_TEST_CASE(a_client_that_leaves_a_whole_answer_frees_its_slot) {
  const double cancelled = metric("rwkv_requests_cancelled_total");
  {
    httplib::Client c("127.0.0.1", srv->port);
    c.set_bearer_token_auth(api_key);
    c.set_read_timeout(1, 0);
    const auto r = c.Post("/v1/completions",
                          json{{"prompt", "Tell me everything"}, {"max_tokens", 1000000}, {"temperature", 0}}.dump(),
                          "application/json");
    BOOST_TEST(!r);  // timed out
  }
  for (int i = 0; i < 100 && metric("rwkv_slots_busy") > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  BOOST_TEST(metric("rwkv_slots_busy") == 0.0);
  BOOST_TEST(metric("rwkv_requests_cancelled_total") == cancelled + 1);
}
