// Heap cost of a backlog (invariant D4) and the time to open a store that holds one (D5).
//
//   build/bench/memory_bench [DIR] [MILLIONS...]     e.g. build/bench/memory_bench /tmp/wm 1 10
//
// With MAX_PRIORITY=N in the environment the queue is a priority queue (x-max-priority N)
// and message i has priority i % (N+1).
//
// For each count, one child process fills a durable queue with persistent 256-byte
// messages; a fresh child then opens the store, times the open, takes and acknowledges a
// few messages (so the queue is in use), and reports RssAnon — anonymous memory: the heap
// and stacks, not LMDB's file-backed map — against the same measurement on an empty store.
// Measuring in a fresh process keeps the allocator's leftovers from the filling burst
// out of the figure.
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
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

int max_priority() {
  const char* v = std::getenv("MAX_PRIORITY");
  return v ? std::atoi(v) : -1;
}

warren::QueueOptions backlog_queue() {
  warren::QueueOptions o{.durable = true};
  if (max_priority() >= 0) o.arguments.set("x-max-priority", warren::FieldValue(int32_t(max_priority())));
  return o;
}

const warren::BrokerOptions options(const std::string& dir) {
  return {.data_dir = dir, .durability = warren::Durability::nosync};
}

void fill(const std::string& dir, uint64_t from, uint64_t to) {
  auto broker = warren::Broker::open(options(dir));
  auto ch = broker->channel();
  ch.queue_declare("backlog", backlog_queue());
  const std::string body(256, 'b');
  for (uint64_t i = from; i < to; ++i) {
    warren::Message m;
    m.body = body;
    m.properties.delivery_mode = 2;
    if (max_priority() >= 0) m.properties.priority = uint8_t(i % uint64_t(max_priority() + 1));
    ch.basic_publish("", "backlog", std::move(m));
  }
  ch.flush(std::chrono::minutes(10));
}

struct Measurement {
  long rss_kib = 0;
  long heap_in_use_kib = 0;
  double open_ms = 0;
  uint64_t messages = 0;
};

Measurement measure(const std::string& dir) {
  Measurement m;
  auto t0 = std::chrono::steady_clock::now();
  auto broker = warren::Broker::open(options(dir));
  m.open_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  auto ch = broker->channel();
  m.messages = ch.queue_declare("backlog", backlog_queue()).message_count;
  for (int i = 0; i < 1000; ++i)
    if (auto d = ch.basic_get("backlog")) ch.basic_ack(d->delivery_tag);
  ch.flush();
  malloc_trim(0);
  m.rss_kib = rss_anon_kib();
  m.heap_in_use_kib = long(mallinfo2().uordblks / 1024);
  return m;
}

// Runs fn in a child process; returns what it wrote into `out`.
template <class T, class F>
T in_child(F fn) {
  int fds[2];
  if (pipe(fds) != 0) std::exit(1);
  pid_t pid = fork();
  if (pid == 0) {
    T result = fn();
    (void)!write(fds[1], &result, sizeof result);
    _exit(0);
  }
  close(fds[1]);
  T result{};
  if (read(fds[0], &result, sizeof result) != sizeof result) std::fprintf(stderr, "child failed\n");
  close(fds[0]);
  waitpid(pid, nullptr, 0);
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = argc > 1
                        ? argv[1]
                        : (std::filesystem::temp_directory_path() / "warren-memory-bench").string();
  std::vector<uint64_t> counts;
  for (int i = 2; i < argc; ++i) counts.push_back(uint64_t(std::stod(argv[i]) * 1e6));
  if (counts.empty()) counts = {1000000};
  std::filesystem::remove_all(dir);

  in_child<int>([&] {
    fill(dir, 0, 0);
    return 0;
  });
  Measurement base = in_child<Measurement>([&] { return measure(dir); });
  std::printf("%-12s %12s %12s %14s %14s %10s\n", "messages", "RssAnon KiB", "growth KiB",
              "bytes/message", "heap in use", "open ms");
  std::printf("%-12d %12ld %12d %14s %14ld %10.1f\n", 0, base.rss_kib, 0, "-", base.heap_in_use_kib,
              base.open_ms);
  uint64_t have = 0;
  for (uint64_t count : counts) {
    in_child<int>([&] {
      fill(dir, have, count);
      return 0;
    });
    have = count;
    Measurement m = in_child<Measurement>([&] { return measure(dir); });
    if (m.messages + 1000 < count)
      std::fprintf(stderr, "expected about %llu messages, found %llu\n", (unsigned long long)count,
                   (unsigned long long)m.messages);
    // The 1000 taken by the previous measurement are gone from the count.
    have = m.messages - 1000;
    std::printf("%-12llu %12ld %12ld %14.2f %14ld %10.1f\n", (unsigned long long)count, m.rss_kib,
                m.rss_kib - base.rss_kib, double(m.rss_kib - base.rss_kib) * 1024.0 / double(count),
                m.heap_in_use_kib, m.open_ms);
  }
  std::filesystem::remove_all(dir);
  return 0;
}
