// What a broker keeps of things that are gone: nothing. Memory is bounded by growth over a
// measured baseline (never an absolute figure), after a warm-up round.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "broker_util.h"
#include "storage/store.h"

namespace warren {
namespace {

using namespace warren::testing;

uint64_t rss_anon_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("RssAnon:", 0) == 0) return std::stoull(line.substr(8));
  return 0;
}

bool sanitized() {
#if defined(__SANITIZE_ADDRESS__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  return true;
#endif
#endif
  return false;
}

// 50 000 queues declared and deleted per round: a round leaves nothing behind (each used
// to keep ~900 bytes in the engine's registry for good).
TEST(Resources, DeletedQueuesLeaveNothingBehind) {
  if (sanitized()) GTEST_SKIP() << "sanitizers keep freed memory on purpose";
  auto broker = memory_broker();
  auto ch = broker->channel();
  auto round = [&] {
    for (int i = 0; i < 50'000; ++i) ch.queue_declare("q" + std::to_string(i));
    for (int i = 0; i < 50'000; ++i) ch.queue_delete("q" + std::to_string(i));
  };
  round();  // warms the allocator up
  uint64_t baseline = rss_anon_kib();
  round();
  round();
  EXPECT_LT(rss_anon_kib() - std::min(rss_anon_kib(), baseline), 8'000u)
      << "two rounds grew the heap by more than 8 MB";
}

// The RPC pattern: a server-named exclusive reply queue per call, gone with its connection.
TEST(Resources, ExclusiveQueuesOfClosedConnectionsLeaveNothingBehind) {
  if (sanitized()) GTEST_SKIP() << "sanitizers keep freed memory on purpose";
  auto broker = memory_broker();
  auto round = [&] {
    for (int c = 0; c < 50; ++c) {
      auto conn = broker->connect();
      auto ch = conn.channel();
      for (int i = 0; i < 1000; ++i) ch.queue_declare("", {.exclusive = true});
      conn.close();
    }
  };
  round();
  uint64_t baseline = rss_anon_kib();
  round();
  round();
  EXPECT_LT(rss_anon_kib() - std::min(rss_anon_kib(), baseline), 8'000u);
}

// Failures to take the data directory say what went wrong, not "in use" for everything.
TEST(Resources, TheLockFileErrorSaysWhatHappened) {
  TempDir dir;
  std::filesystem::create_directory(dir.sub("LOCK"));  // a directory where the lock file goes
  Status s = error_of([&] { Broker::open({.data_dir = dir.path()}); });
  EXPECT_NE(s.text().find("cannot open the lock file"), std::string::npos) << s.text();
  EXPECT_NE(s.text().find("Is a directory"), std::string::npos) << s.text();

  TempDir other;
  auto first = Broker::open({.data_dir = other.path()});
  Status busy = error_of([&] { Broker::open({.data_dir = other.path()}); });
  EXPECT_NE(busy.text().find("in use by another process"), std::string::npos) << busy.text();
}

}  // namespace
}  // namespace warren
