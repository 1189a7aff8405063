// Costs of the reliability features, each beside its baseline in the same run:
//
//   build/bench/reliability_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
//
// - settle/ack vs settle/reject_to_dlx: consuming 100k persistent 256 B messages with
//   prefetch 256 and acknowledging each, against rejecting each into a dead-letter queue
//   (every reject is an atomic move: delete + dead-lettered copy in one commit).
// - publish/dedup:0 vs dedup:1: persistent 256 B publishes with confirms (window 256), each
//   with a fresh message_id, to a durable queue without and with x-message-deduplication.
// - ttl_expiry: 1M persistent 256 B messages that all expire at the same moment; time and
//   CPU (all threads) from that moment until the queue is empty.
#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "warren/broker.h"

namespace {

using namespace std::chrono_literals;

std::string temp_dir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "warren-bench-XXXXXX").string();
  return mkdtemp(tmpl.data());
}

warren::Message persistent(size_t bytes) {
  warren::Message m;
  m.body = std::string(bytes, 'b');
  m.properties.delivery_mode = 2;
  return m;
}

uint64_t ready(warren::Broker& b, std::string_view q) {
  for (auto& info : b.list_queues())
    if (info.name == q) return info.messages_ready;
  return 0;
}

// Publishes with at most `window` confirms outstanding.
class WindowedPublisher {
 public:
  WindowedPublisher(warren::Channel& ch, uint64_t window) : ch_(ch), window_(window) {
    ch_.confirm_select();
    ch_.on_confirm([this](uint64_t tag, bool, bool) {
      std::lock_guard lock(m_);
      confirmed_ = std::max(confirmed_, tag);
      cv_.notify_one();
    });
  }
  void publish(std::string_view queue, warren::Message msg) {
    {
      std::unique_lock lock(m_);
      cv_.wait(lock, [&] { return published_ - confirmed_ < window_; });
    }
    published_ = ch_.basic_publish("", queue, std::move(msg));
  }
  uint64_t finish() {
    ch_.wait_for_confirms(60s);
    return published_;
  }

 private:
  warren::Channel& ch_;
  uint64_t window_;
  std::mutex m_;
  std::condition_variable cv_;
  uint64_t confirmed_ = 0, published_ = 0;
};

void settle(benchmark::State& state) {
  const bool reject = state.range(0) != 0;
  constexpr int kMessages = 100000;
  for (auto _ : state) {
    state.PauseTiming();
    std::string dir = temp_dir();
    {
      auto broker = warren::Broker::open({.data_dir = dir});
      auto ch = broker->channel();
      ch.queue_declare("dead", {.durable = true});
      warren::FieldTable args;
      args.set("x-dead-letter-exchange", warren::FieldValue(""));
      args.set("x-dead-letter-routing-key", warren::FieldValue("dead"));
      ch.queue_declare("work", {.durable = true, .arguments = args});
      for (int i = 0; i < kMessages; ++i) ch.basic_publish("", "work", persistent(256));
      ch.flush();
      ch.basic_qos(256);
      std::mutex m;
      std::condition_variable cv;
      int seen = 0;
      state.ResumeTiming();
      ch.basic_consume("work", [&](warren::Delivery d) {
        if (reject)
          ch.basic_reject(d.delivery_tag, false);
        else
          ch.basic_ack(d.delivery_tag);
        std::lock_guard lock(m);
        if (++seen == kMessages) cv.notify_one();
      });
      {
        std::unique_lock lock(m);
        cv.wait(lock, [&] { return seen == kMessages; });
      }
      ch.flush();
      state.PauseTiming();
      if (reject && ready(*broker, "dead") != uint64_t(kMessages))
        state.SkipWithError("not every message reached the dead-letter queue");
      ch.close();
    }
    std::filesystem::remove_all(dir);
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * kMessages);
}
BENCHMARK(settle)->ArgNames({"reject_to_dlx"})->Arg(0)->Arg(1)->Iterations(3)->UseRealTime()->Unit(benchmark::kMillisecond);

void publish(benchmark::State& state) {
  const bool dedup = state.range(0) != 0;
  std::string dir = temp_dir();
  uint64_t published = 0;
  {
    auto broker = warren::Broker::open({.data_dir = dir});
    auto ch = broker->channel();
    warren::FieldTable args;
    if (dedup) {
      args.set("x-message-deduplication", warren::FieldValue(true));
      args.set("x-cache-size", warren::FieldValue(int32_t(state.range(1))));
    }
    ch.queue_declare("bench", {.durable = true, .arguments = args});
    WindowedPublisher publisher(ch, 256);
    uint64_t id = 0;
    for (auto _ : state) {
      auto msg = persistent(256);
      msg.properties.message_id = "msg-" + std::to_string(++id);
      publisher.publish("bench", std::move(msg));
    }
    published = publisher.finish();
  }
  state.SetItemsProcessed(int64_t(published));
  std::filesystem::remove_all(dir);
}
BENCHMARK(publish)->ArgNames({"dedup", "window"})->Args({0, 0})->Args({1, 100000})->Args({1, 1000000})->Iterations(300000)->UseRealTime();

double cpu_seconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

uint64_t wall_ms() {
  return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count());
}

void ttl_expiry(benchmark::State& state) {
  const int messages = int(state.range(0));
  for (auto _ : state) {
    std::string dir = temp_dir();
    {
      auto broker = warren::Broker::open({.data_dir = dir});
      auto ch = broker->channel();
      ch.queue_declare("bench", {.durable = true});
      // Every message expires at the same moment, comfortably after the queue is full.
      const uint64_t expire_at = wall_ms() + 2000 + uint64_t(messages) / 100;
      WindowedPublisher publisher(ch, 1024);
      for (int i = 0; i < messages; ++i) {
        auto msg = persistent(256);
        uint64_t now = wall_ms();
        msg.properties.expiration = std::to_string(expire_at > now ? expire_at - now : 0);
        publisher.publish("bench", std::move(msg));
      }
      publisher.finish();
      if (wall_ms() >= expire_at) state.SkipWithError("filling took longer than the TTL");
      std::this_thread::sleep_until(std::chrono::system_clock::time_point(
          std::chrono::milliseconds(expire_at)));
      double cpu0 = cpu_seconds();
      auto t0 = std::chrono::steady_clock::now();
      while (ready(*broker, "bench") > 0) std::this_thread::sleep_for(1ms);
      ch.flush();
      auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      state.SetIterationTime(elapsed);
      state.counters["cpu_s"] = cpu_seconds() - cpu0;
    }
    std::filesystem::remove_all(dir);
  }
  state.SetItemsProcessed(state.iterations() * messages);
}
BENCHMARK(ttl_expiry)->Arg(1000000)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
