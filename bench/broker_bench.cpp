// Throughput of the in-process broker against the raw LMDB limit, in one run.
//
//   build/bench/broker_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Every case writes to a real store in a temporary directory with fsync durability: the
// raw LMDB cases commit the same bytes (16-byte key, body-sized value) one message per
// commit or in batches; the broker cases publish persistent messages to a durable queue
// keeping at most `window` confirms outstanding.
#include <benchmark/benchmark.h>
#include <lmdb.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>

#include "warren/broker.h"

namespace {

std::string temp_dir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "warren-bench-XXXXXX").string();
  return mkdtemp(tmpl.data());
}

void lmdb_commits(benchmark::State& state) {
  const int batch = int(state.range(0));
  const std::string value(size_t(state.range(1)), 'v');
  std::string dir = temp_dir();
  MDB_env* env;
  mdb_env_create(&env);
  mdb_env_set_mapsize(env, size_t(1) << 34);
  mdb_env_open(env, dir.c_str(), 0, 0644);
  MDB_dbi dbi;
  MDB_txn* txn;
  mdb_txn_begin(env, nullptr, 0, &txn);
  mdb_dbi_open(txn, nullptr, 0, &dbi);
  mdb_txn_commit(txn);
  uint64_t seq = 0;
  for (auto _ : state) {
    mdb_txn_begin(env, nullptr, 0, &txn);
    for (int i = 0; i < batch; ++i) {
      char key[16] = {};
      uint64_t s = ++seq;
      for (int b = 0; b < 8; ++b) key[15 - b] = char(s >> (8 * b));
      MDB_val k{16, key}, v{value.size(), const_cast<char*>(value.data())};
      mdb_put(txn, dbi, &k, &v, 0);
    }
    mdb_txn_commit(txn);
  }
  state.SetItemsProcessed(state.iterations() * batch);
  state.SetBytesProcessed(state.iterations() * batch * int64_t(value.size()));
  mdb_env_close(env);
  std::filesystem::remove_all(dir);
}
BENCHMARK(lmdb_commits)
    ->ArgNames({"batch", "bytes"})
    ->ArgsProduct({{1, 64, 1024}, {256, 4096}})
    ->UseRealTime();

// Publishes with at most `window` confirms outstanding; one iteration = `window` messages.
void publish_confirm(benchmark::State& state) {
  const uint64_t window = uint64_t(state.range(0));
  const std::string body(size_t(state.range(1)), 'b');
  std::string dir = temp_dir();
  {
    auto broker = warren::Broker::open({.data_dir = dir});
    auto ch = broker->channel();
    ch.queue_declare("bench", {.durable = true});
    ch.confirm_select();
    std::mutex m;
    std::condition_variable cv;
    uint64_t confirmed = 0, published = 0;
    ch.on_confirm([&](uint64_t tag, bool, bool) {
      std::lock_guard lock(m);
      confirmed = std::max(confirmed, tag);
      cv.notify_one();
    });
    for (auto _ : state) {
      for (uint64_t i = 0; i < window; ++i) {
        if (window == 1 && published > 0) {
          ch.wait_for_confirms(std::chrono::seconds(60));  // a publisher waiting for each confirm
        } else {
          std::unique_lock lock(m);
          cv.wait(lock, [&] { return published - confirmed < window; });
        }
        warren::Message msg;
        msg.body = body;
        msg.properties.delivery_mode = 2;
        published = ch.basic_publish("", "bench", std::move(msg));
      }
    }
    ch.wait_for_confirms(std::chrono::seconds(60));
    state.SetItemsProcessed(int64_t(published));
    state.SetBytesProcessed(int64_t(published * body.size()));
  }
  std::filesystem::remove_all(dir);
}
BENCHMARK(publish_confirm)
    ->ArgNames({"window", "bytes"})
    ->ArgsProduct({{1, 64, 1024}, {256, 4096}})
    ->UseRealTime();

std::unique_ptr<warren::Broker> filled_broker(const std::string& dir, int count, size_t bytes) {
  auto broker = warren::Broker::open({.data_dir = dir});
  auto ch = broker->channel();
  ch.queue_declare("bench", {.durable = true});
  for (int i = 0; i < count; ++i) {
    warren::Message msg;
    msg.body = std::string(bytes, 'b');
    msg.properties.delivery_mode = 2;
    ch.basic_publish("", "bench", std::move(msg));
  }
  ch.flush();
  return broker;
}

void get_ack(benchmark::State& state) {
  std::string dir = temp_dir();
  constexpr int kMessages = 200000;
  {
    auto broker = filled_broker(dir, kMessages, 256);
    auto ch = broker->channel();
    int64_t n = 0;
    for (auto _ : state) {
      auto d = ch.basic_get("bench");
      if (!d) {
        state.SkipWithError("queue ran dry");
        break;
      }
      ch.basic_ack(d->delivery_tag);
      ++n;
    }
    ch.flush();
    state.SetItemsProcessed(n);
  }
  std::filesystem::remove_all(dir);
}
BENCHMARK(get_ack)->Iterations(100000)->UseRealTime();

// Consumes `count` messages with prefetch 256, acking each from the delivery callback.
void consume_ack(benchmark::State& state) {
  std::string dir = temp_dir();
  constexpr int kMessages = 100000;
  {
    for (auto _ : state) {
      state.PauseTiming();
      auto broker = filled_broker(dir, kMessages, 256);
      auto ch = broker->channel();
      ch.basic_qos(256);
      std::mutex m;
      std::condition_variable cv;
      int seen = 0;
      state.ResumeTiming();
      ch.basic_consume("bench", [&](warren::Delivery d) {
        ch.basic_ack(d.delivery_tag);
        std::lock_guard lock(m);
        if (++seen == kMessages) cv.notify_one();
      });
      std::unique_lock lock(m);
      cv.wait(lock, [&] { return seen == kMessages; });
      lock.unlock();
      ch.flush();
      state.PauseTiming();
      ch.close();
      broker.reset();
      std::filesystem::remove_all(dir);
      state.ResumeTiming();
    }
    state.SetItemsProcessed(state.iterations() * kMessages);
  }
  std::filesystem::remove_all(dir);
}
BENCHMARK(consume_ack)->Iterations(3)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
