// Heap cost of a backlog (invariant D4) and the time to open a store that holds one (D5).
//
//   build/bench/memory_bench [DIR] [MILLIONS...]     e.g. build/bench/memory_bench /tmp/wm 1 10
//
// For each count it fills a durable queue with that many persistent 256-byte messages,
// reports RssAnon (the process's anonymous memory: heap, not LMDB's file-backed map),
// then closes and reopens the store, timing the open.
#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "warren/broker.h"

namespace {

long rss_anon_kib() {
  std::ifstream status("/proc/self/status");
  std::string key;
  long value = 0;
  while (status >> key) {
    if (key == "RssAnon:") {
      status >> value;
      return value;
    }
    status.ignore(4096, '\n');
  }
  return -1;
}

long settled_rss_anon_kib() {
  malloc_trim(0);  // freed buffers are not part of the backlog's cost
  return rss_anon_kib();
}

void fill(warren::Broker& broker, uint64_t from, uint64_t to) {
  auto ch = broker.channel();
  ch.queue_declare("backlog", {.durable = true});
  const std::string body(256, 'b');
  for (uint64_t i = from; i < to; ++i) {
    warren::Message m;
    m.body = body;
    m.properties.delivery_mode = 2;
    ch.basic_publish("", "backlog", std::move(m));
  }
  ch.flush(std::chrono::minutes(10));
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : (std::filesystem::temp_directory_path() / "warren-memory-bench").string();
  std::vector<uint64_t> counts;
  for (int i = 2; i < argc; ++i) counts.push_back(uint64_t(std::stod(argv[i]) * 1e6));
  if (counts.empty()) counts = {1000000};
  std::filesystem::remove_all(dir);
  warren::BrokerOptions options{.data_dir = dir, .durability = warren::Durability::nosync};

  auto broker = warren::Broker::open(options);
  broker->channel().queue_declare("backlog", {.durable = true});
  long base = settled_rss_anon_kib();
  std::printf("%-12s %14s %14s %16s %12s\n", "messages", "RssAnon KiB", "growth KiB", "bytes/message", "open ms");
  std::printf("%-12d %14ld %14d %16s %12s\n", 0, base, 0, "-", "-");
  uint64_t have = 0;
  for (uint64_t count : counts) {
    fill(*broker, have, count);
    have = count;
    broker.reset();
    auto t0 = std::chrono::steady_clock::now();
    broker = warren::Broker::open(options);
    double open_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    auto queues = broker->list_queues();
    if (queues.empty() || queues[0].messages_ready != count) {
      std::fprintf(stderr, "expected %llu messages after reopen\n", (unsigned long long)count);
      return 1;
    }
    // Touch the queue as a consumer would, then measure.
    broker->channel().queue_declare("backlog", {.durable = true});
    long rss = settled_rss_anon_kib();
    std::printf("%-12llu %14ld %14ld %16.2f %12.1f\n", (unsigned long long)count, rss, rss - base,
                double(rss - base) * 1024.0 / double(count), open_ms);
  }
  broker.reset();
  std::filesystem::remove_all(dir);
  return 0;
}
