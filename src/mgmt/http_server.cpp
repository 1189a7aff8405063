#include "mgmt/http_server.h"

#include <httplib.h>
#include <sched.h>

#include <asio/post.hpp>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <set>
#include <thread>

#include "common/log.h"
#include "mgmt/json_fields.h"

namespace warren::mgmt {

namespace {

constexpr size_t kMaxBody = 20'000'000;  // RabbitMQ's management.http.max_body_size

// "Authorization: Basic base64(user:password)" -> user, password.
std::optional<std::pair<std::string, std::string>> basic_credentials(const httplib::Request& req) {
  const std::string header = req.get_header_value("Authorization");
  if (!header.starts_with("Basic ")) return std::nullopt;
  auto decoded = decode_base64(std::string_view(header).substr(6));
  if (!decoded) return std::nullopt;
  auto colon = decoded->find(':');
  if (colon == std::string::npos) return std::nullopt;
  return std::pair{decoded->substr(0, colon), decoded->substr(colon + 1)};
}

void write(httplib::Response& res, const Response& r) {
  res.status = r.status;
  if (!r.text.empty()) {
    res.set_content(r.text, r.content_type);
    return;
  }
  // Names are bytes in AMQP: what is not UTF-8 is shown replaced rather than failing the answer.
  if (!r.body.is_null())
    res.set_content(r.body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                    "application/json");
}

// The broker's loop must win the CPU over management work (JSON of thousands of queues on two
// cores would otherwise delay confirms), so the HTTP workers run at the lowest priority.
class BackgroundPool : public httplib::TaskQueue {
 public:
  explicit BackgroundPool(size_t threads) : pool_(threads) {}
  void enqueue(std::function<void()> fn) override {
    pool_.enqueue([fn = std::move(fn)] {
      lower_this_threads_priority();
      fn();
    });
  }
  void shutdown() override { pool_.shutdown(); }

 private:
  static void lower_this_threads_priority() {
    thread_local bool lowered = false;
    if (lowered) return;
    lowered = true;
    // SCHED_IDLE: this thread (pid 0 is the caller) runs when the broker's threads do not.
    sched_param none{};
    if (sched_setscheduler(0, SCHED_IDLE, &none) != 0)
      log::debug("cannot lower the priority of an HTTP worker: {}", std::strerror(errno));
  }
  httplib::ThreadPool pool_;
};

}  // namespace

// Requests waiting for the loop; stop() releases them all. The loop never takes a lock a
// worker may hold: workers run under SCHED_IDLE, and one preempted while holding a lock the
// loop wants would stall the loop for as long as the machine stays busy (a priority
// inversion). So the hand-over is atomics only: the loop marks a call done and wakes every
// waiter; each rechecks its own.
struct HttpServer::Pending {
  std::atomic<uint32_t> changes{0};  // bumped on every completion and on stop
  std::atomic<bool> stopped{false};

  void wake() {
    changes.fetch_add(1);
    changes.notify_all();
  }
  // Until done() holds or, unless `ignore_stop`, stop() has run. False if stopped first.
  template <class Done>
  bool wait(Done done, bool ignore_stop = false) {
    for (;;) {
      const uint32_t seen = changes.load();
      if (done()) return true;
      if (!ignore_stop && stopped.load()) return false;
      changes.wait(seen);
    }
  }
};

namespace {

// One call from a worker into the loop.
struct LoopCall {
  enum State : int { queued, running, done, abandoned };
  std::atomic<int> state{queued};
  bool claim() {  // by the loop: false if the worker has already left
    int expected = queued;
    return state.compare_exchange_strong(expected, running);
  }
  bool abandon() {  // by a stopped worker: false if the loop is already running the call
    int expected = queued;
    return state.compare_exchange_strong(expected, abandoned);
  }
  bool is_done() const { return state.load() == done; }
};

}  // namespace

HttpServer::HttpServer(asio::io_context& io, core::Engine& engine, Handler handler,
                       Authenticator authenticate)
    : io_(io),
      engine_(engine),
      handler_(std::move(handler)),
      authenticate_(std::move(authenticate)),
      pending_(std::make_shared<Pending>()) {}

HttpServer::~HttpServer() {
  stop();
  if (thread_.joinable()) thread_.join();
}

void HttpServer::serve_static(std::string path, std::string_view content,
                              std::string content_type) {
  statics_.push_back({std::move(path), content, std::move(content_type)});
}

Status HttpServer::start(const std::string& address, uint16_t port, std::string_view what,
                         const Tls* tls) {
  if (tls) {
    auto secure =
        std::make_unique<httplib::SSLServer>(tls->cert_file.c_str(), tls->key_file.c_str());
    if (!secure->is_valid())
      return Status::error(ReplyCode::internal_error,
                           fmt::format("the {}: cannot use the certificate {} with the key {}",
                                       what, tls->cert_file, tls->key_file));
    // TLS 1.2 and 1.3 only, as the AMQPS listener.
    SSL_CTX_set_min_proto_version(secure->ssl_context(), TLS1_2_VERSION);
    server_ = std::move(secure);
  } else {
    server_ = std::make_unique<httplib::Server>();
  }
  server_->new_task_queue = [] { return new BackgroundPool(CPPHTTPLIB_THREAD_POOL_COUNT); };
  // cpp-httplib's default is SO_REUSEPORT, with which a second warrend (same user) given the
  // same port listens beside the first and takes half its requests. SO_REUSEADDR only
  // rebinds over the last run's closed connections, as the AMQP listener does.
  server_->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  for (const Static& s : statics_)  // before the catch-all: the first route that matches serves
    server_->Get(s.path, [s](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(s.content), s.content_type);
    });
  server_->set_payload_max_length(kMaxBody);
  server_->set_read_timeout(std::chrono::seconds(30));
  auto handle = [this](const httplib::Request& req, httplib::Response& res) {
    auto credentials = basic_credentials(req);
    if (authenticate_ && !credentials) {
      res.set_header("WWW-Authenticate", "Basic realm=\"Warren Management\"");
      write(res, {401, nullptr});
      return;
    }
    Request request;
    request.method = req.method;
    // The raw target: a vhost named "/" arrives as %2F and must stay one path segment.
    request.path = req.target.substr(0, req.target.find('?'));
    for (const auto& [key, value] : req.params) request.query.emplace(key, value);
    request.body = req.body;
    if (credentials) request.user = credentials->first;
    const bool loopback = req.remote_addr == "127.0.0.1" || req.remote_addr == "::1" ||
                          req.remote_addr.starts_with("::ffff:127.");
    Response response =
        on_loop(std::move(request), credentials ? credentials->second : "", loopback);
    if (response.status == 401)
      res.set_header("WWW-Authenticate", "Basic realm=\"Warren Management\"");
    if (auto finish = std::move(response.finish))  // here, not on the loop
      finish(response, [this](const std::function<bool()>& step) { return run_on_loop(step); });
    write(res, response);
  };
  const std::string any = "/.*";
  server_->Get(any, handle)
      .Put(any, handle)
      .Post(any, handle)
      .Delete(any, handle)
      .Patch(any, handle)
      .Options(any, handle);
  server_->set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.status == 413)
      write(res, {413, nlohmann::json{{"error", "bad_request"},
                                      {"reason", "Exceeded HTTP request body size limit"}}});
  });
  if (port == 0) {
    int chosen = server_->bind_to_any_port(address);
    if (chosen <= 0)
      return Status::error(ReplyCode::internal_error,
                           fmt::format("cannot listen on {} for the {}", address, what));
    port_ = uint16_t(chosen);
  } else {
    if (!server_->bind_to_port(address, port))
      return Status::error(ReplyCode::internal_error,
                           fmt::format("cannot listen on {}:{} for the {}", address, port, what));
    port_ = port;
  }
  auto listen_returned = std::make_shared<std::atomic<bool>>(false);
  thread_ = std::thread([this, listen_returned] {
    server_->listen_after_bind();
    listen_returned->store(true);
  });
  // cpp-httplib's stop() is a no-op until the listening thread has marked itself running: a
  // stop() before that (a SIGTERM right after the readiness line) would leave it listening
  // for ever. Marking itself running is the thread's first step, so this wait is short.
  while (!server_->is_running() && !listen_returned->load()) std::this_thread::yield();
  log::info("{} listening on {}:{}{}", what, address, port_, tls ? " (HTTPS)" : "");
  return {};
}

void HttpServer::stop() {
  pending_->stopped.store(true);
  pending_->wake();
  if (server_) server_->stop();
}

// The steps are tasks of their own, each posted by the last from the loop itself: what the
// loop has to do meanwhile (confirms) runs between them, and the worker is woken once, at the
// end, rather than for every step (a listing of 1,000 queues is 16 steps).
bool HttpServer::run_on_loop(const std::function<bool()>& step) {
  struct Step {
    asio::io_context& io;
    const std::function<bool()>& step;
    std::shared_ptr<LoopCall> call;
    std::shared_ptr<Pending> pending;
    void operator()() const {
      if (!call->claim()) return;  // the waiter left: step, on its stack, is gone
      if (step()) {
        call->state.store(LoopCall::done);
        pending->wake();
        return;
      }
      call->state.store(LoopCall::queued);  // between steps a stopped worker may leave
      if (pending->stopped.load()) pending->wake();  // one may be waiting for this step's end
      asio::post(io, *this);
    }
  };
  auto call = std::make_shared<LoopCall>();
  auto pending = pending_;
  asio::post(io_, Step{io_, step, call, pending});
  auto finished = [&] { return call->is_done(); };
  if (pending->wait(finished)) return true;
  for (;;) {  // stopped
    if (call->abandon()) return false;
    // A step is running: it uses our stack. Wait for its end, then leave if we can.
    pending->wait([&] { return call->state.load() != LoopCall::running; }, /*ignore_stop=*/true);
    if (call->is_done()) return true;
  }
}

Response HttpServer::on_loop(Request request, std::string password, bool loopback) {
  struct Call : LoopCall {
    Response answer;
  };
  auto call = std::make_shared<Call>();
  auto pending = pending_;
  // Everything the loop's side holds is shared, so it may finish after the waiter has left.
  auto finish = [call, pending](Response r) {
    call->answer = std::move(r);
    call->state.store(LoopCall::done);
    pending->wake();
  };
  asio::post(io_, [this, request = std::move(request), password = std::move(password), loopback,
                   finish]() mutable {
    if (authenticate_ && !authenticate_(request.user, password, loopback))
      return finish({401, nlohmann::json{{"error", "not_authorized"}, {"reason", "Login failed"}}});
    Response r = handler_(request);
    if (r.commit == 0) return finish(std::move(r));
    // Answered once what it changed is on disk, as AMQP's declare-ok is.
    core::CommitId commit = r.commit;
    engine_.when_durable(commit, [r = std::move(r), finish](const Status& s) mutable {
      if (!s) r = {500, nlohmann::json{{"error", "internal_error"}, {"reason", s.text()}}};
      finish(std::move(r));
    });
  });
  if (pending->wait([&] { return call->is_done(); })) return std::move(call->answer);
  return {503, nlohmann::json{{"error", "unavailable"}, {"reason", "the broker is stopping"}}};
}

}  // namespace warren::mgmt
