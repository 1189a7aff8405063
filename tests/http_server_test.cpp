// The management HTTP listener's hand-over between its workers and the broker's loop, over a
// real loopback socket with cpp-httplib's client: answers come from the loop, work deferred
// to the worker reads the broker in steps with other loop work between them, and stopping
// releases a worker whose step the loop has not run (before the first or between two), but
// waits for one the loop is running (it uses the worker's stack); a stop right after start
// ends the listener too. The queue listing, read in turns, stays whole
// while queues come and go between its turns.
#include "mgmt/http_server.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <chrono>
#include <fmt/format.h>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "core/engine.h"
#include "mgmt/api.h"

namespace warren::testing {
namespace {

using nlohmann::json;

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BrokerOptions options;
    options.durability = Durability::in_memory;
    engine_ = std::move(core::Engine::open(io_, {options, nullptr}).value());
  }
  void TearDown() override {
    server_.reset();
    release_loop();
    work_.reset();
    if (loop_.joinable()) loop_.join();
    engine_->token()->lock();
    engine_->shutdown();
    engine_.reset();
  }

  // Starts the listener with `handler` and the loop on its own thread.
  void start(mgmt::HttpServer::Handler handler) {
    server_ = std::make_unique<mgmt::HttpServer>(io_, *engine_, std::move(handler));
    ASSERT_TRUE(server_->start("127.0.0.1", 0, "test listener"));
    loop_ = std::thread([this] {
      std::lock_guard own(*engine_->token());  // the loop runs the broker, as warrend's does
      io_.run();
    });
  }
  // Keeps the loop busy until release_loop(): what the loop is asked meanwhile waits.
  void block_loop() {
    asio::post(io_, [gate = loop_gate_.get_future().share()] { gate.wait(); });
  }
  void release_loop() {
    if (!loop_released_.exchange(true)) loop_gate_.set_value();
  }
  // Runs fn on the loop and waits for it.
  void on_loop(const std::function<void()>& fn) {
    std::promise<void> done;
    asio::post(io_, [&] {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }
  // GET `path` on a thread of its own; the answer's status, or -1 without one.
  std::future<int> get_async(std::string path) {
    return std::async(std::launch::async, [port = server_->port(), path] {
      httplib::Client client("127.0.0.1", port);
      auto res = client.Get(path);
      return res ? res->status : -1;
    });
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  std::unique_ptr<core::Engine> engine_;
  std::unique_ptr<mgmt::HttpServer> server_;
  std::thread loop_;
  std::promise<void> loop_gate_;
  std::atomic<bool> loop_released_{false};
};

TEST_F(HttpServerTest, AnswersFromTheLoopAndReadsTheBrokerInTurns) {
  std::atomic<int> steps_on_loop{0};
  std::atomic<bool> other_work_between_steps{false};
  start([&](const mgmt::Request& r) {
    mgmt::Response out{200, json{{"path", r.path}}};
    out.finish = [&](mgmt::Response& res, const mgmt::RunOnLoop& run_on_loop) {
      bool other_work_ran = false;  // set by a task the first step posts to the loop
      int steps = 0;
      EXPECT_TRUE(run_on_loop([&] {
        ++steps;
        if (loop_.get_id() == std::this_thread::get_id()) ++steps_on_loop;
        if (steps == 1) asio::post(io_, [&] { other_work_ran = true; });
        if (steps == 2) other_work_between_steps = other_work_ran;
        return steps == 3;
      }));
      res.body["steps"] = steps_on_loop.load();
    };
    return out;
  });
  httplib::Client client("127.0.0.1", server_->port());
  auto res = client.Get("/api/x");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(json::parse(res->body), (json{{"path", "/api/x"}, {"steps", 3}}));
  EXPECT_TRUE(other_work_between_steps.load()) << "the steps held the loop together";
}

TEST_F(HttpServerTest, StoppingReleasesAWorkerWhoseTurnTheLoopHasNotRun) {
  std::promise<void> finishing;
  std::atomic<bool> turn_ran{false};
  start([&](const mgmt::Request&) {
    block_loop();  // queued before the worker's turn below
    mgmt::Response out{200, nullptr};
    out.finish = [&](mgmt::Response& res, const mgmt::RunOnLoop& run_on_loop) {
      finishing.set_value();
      if (!run_on_loop([&] { return turn_ran = true; }))
        res = {503, json{{"error", "unavailable"}}};
    };
    return out;
  });
  auto status = get_async("/api/x");
  finishing.get_future().wait();
  server_->stop();  // the loop is still blocked: the turn cannot have run
  EXPECT_EQ(status.get(), 503);
  release_loop();
  std::promise<void> drained;  // everything queued before it has run (or been skipped)
  asio::post(io_, [&] { drained.set_value(); });
  drained.get_future().wait();
  EXPECT_FALSE(turn_ran.load()) << "a turn ran after its waiter had left";
}

TEST_F(HttpServerTest, StoppingWaitsForATurnTheLoopIsRunning) {
  std::promise<void> turn_started, turn_may_end;
  auto may_end = turn_may_end.get_future().share();
  start([&](const mgmt::Request&) {
    mgmt::Response out{200, nullptr};
    out.finish = [&, may_end](mgmt::Response& res, const mgmt::RunOnLoop& run_on_loop) {
      int written_by_loop = 0;  // on this worker's stack: the turn must finish before we leave
      bool ran = run_on_loop([&] {
        turn_started.set_value();
        may_end.wait();
        written_by_loop = 7;
        return true;
      });
      res.body = json{{"ran", ran}, {"value", written_by_loop}};
    };
    return out;
  });
  std::promise<std::string> body;
  std::thread client([&, port = server_->port()] {
    httplib::Client c("127.0.0.1", port);
    auto res = c.Get("/api/x");
    body.set_value(res ? res->body : "no answer");
  });
  auto answer = body.get_future();
  turn_started.get_future().wait();
  server_->stop();
  // No answer may come while the turn runs. The wait can only miss a worker that leaves
  // early (it gives such a worker time to show itself); it never fails a correct one.
  EXPECT_EQ(answer.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  turn_may_end.set_value();
  EXPECT_EQ(json::parse(answer.get()), (json{{"ran", true}, {"value", 7}}));
  client.join();
}

// A stop between two steps releases the worker (503) and the steps left are not run: the
// loop, blocked here after the first step, may never come back to them.
TEST_F(HttpServerTest, StoppingBetweenStepsReleasesTheWorker) {
  std::promise<void> first_step_ran;
  std::atomic<int> steps{0};
  start([&](const mgmt::Request&) {
    mgmt::Response out{200, nullptr};
    out.finish = [&](mgmt::Response& res, const mgmt::RunOnLoop& run_on_loop) {
      if (!run_on_loop([&] {
            if (++steps == 1) {
              block_loop();  // queued before the next step
              first_step_ran.set_value();
            }
            return steps == 3;
          }))
        res = {503, json{{"error", "unavailable"}}};
    };
    return out;
  });
  auto status = get_async("/api/x");
  first_step_ran.get_future().wait();
  server_->stop();
  EXPECT_EQ(status.get(), 503);
  release_loop();
  std::promise<void> drained;
  asio::post(io_, [&] { drained.set_value(); });
  drained.get_future().wait();
  EXPECT_EQ(steps.load(), 1) << "a step ran after its waiter had left";
}

// cpp-httplib's stop() does nothing until its listening thread has begun: a stop right after
// start() (a SIGTERM just after the readiness line) once left that thread listening for ever
// and the destructor waiting for it.
TEST_F(HttpServerTest, StoppingRightAfterStartingEndsTheListener) {
  for (int i = 0; i < 200; ++i) {
    mgmt::HttpServer server(io_, *engine_, [](const mgmt::Request&) {
      return mgmt::Response{200, nullptr};
    });
    ASSERT_TRUE(server.start("127.0.0.1", 0, "test listener"));
    server.stop();
  }  // each destructor joins its listening thread
}

// A second listener on a port taken fails, as RabbitMQ's does, instead of sharing it (which
// cpp-httplib's default, SO_REUSEPORT, allows a process of the same user).
TEST_F(HttpServerTest, APortAlreadyListenedOnIsRefused) {
  start([](const mgmt::Request&) { return mgmt::Response{200, nullptr}; });
  mgmt::HttpServer second(io_, *engine_, [](const mgmt::Request&) {
    return mgmt::Response{200, nullptr};
  });
  Status s = second.start("127.0.0.1", server_->port(), "second listener");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.text(), fmt::format("INTERNAL_ERROR - cannot listen on 127.0.0.1:{} for the "
                                  "second listener",
                                  server_->port()));
}

// The listing walks a vhost's queues (an unordered map) in turns, resuming at a bucket. Here,
// after its second turn, the queues named gone-* are deleted and 2,000 are declared, so the
// map is rehashed under the walk: it must start the vhost again, so that every queue there
// throughout is listed exactly once and none deleted before the end shows.
TEST_F(HttpServerTest, AQueueListingIsWholeThoughQueuesComeAndGoBetweenItsTurns) {
  mgmt::Api api(*engine_);
  auto call = [&api](std::string method, std::string path) {
    mgmt::Request r;
    r.method = std::move(method);
    r.path = std::move(path);
    const int status = api.handle(r).status;
    ASSERT_TRUE(status == 201 || status == 204) << r.method << " " << r.path << ": " << status;
  };
  std::atomic<int> turns{0};
  start([&](const mgmt::Request& r) {
    mgmt::Response out = api.handle(r);
    if (!out.finish) return out;
    out.finish = [&, listing = std::move(out.finish)](mgmt::Response& res,
                                                      const mgmt::RunOnLoop& run_on_loop) {
      listing(res, [&](const std::function<bool()>& step) {
        return run_on_loop([&] {
          const bool done = step();
          if (++turns == 2) {
            for (int i = 0; i < 100; ++i)
              call("DELETE", fmt::format("/api/queues/%2F/gone-{:03}", i));
            for (int i = 0; i < 2000; ++i)
              call("PUT", fmt::format("/api/queues/%2F/new-{:04}", i));
          }
          return done;
        });
      });
    };
    return out;
  });
  on_loop([&] {
    for (int i = 0; i < 300; ++i) call("PUT", fmt::format("/api/queues/%2F/keep-{:03}", i));
    for (int i = 0; i < 100; ++i) call("PUT", fmt::format("/api/queues/%2F/gone-{:03}", i));
  });

  httplib::Client client("127.0.0.1", server_->port());
  auto res = client.Get("/api/queues");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  std::map<std::string, int> listed;
  for (const json& q : json::parse(res->body)) ++listed[q["name"].get<std::string>()];
  EXPECT_GT(turns.load(), 2) << "the listing was not read in turns";
  for (int i = 0; i < 300; ++i)
    EXPECT_EQ(listed[fmt::format("keep-{:03}", i)], 1) << fmt::format("keep-{:03}", i);
  for (const auto& [name, times] : listed) {
    EXPECT_FALSE(name.starts_with("gone-")) << name << " was deleted before the listing ended";
    EXPECT_LE(times, 1) << name;
  }
}

}  // namespace
}  // namespace warren::testing
