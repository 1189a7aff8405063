// Damaged stores, in the spirit of LevelDB's and NATS's corruption tests: bytes flipped and
// pages zeroed in data.mdb, files truncated, journal headers and records damaged, on stores
// closed cleanly and on stores left by a crash. Every outcome must be one of: the data
// intact; a clear refusal to open; or a loss that is detected and reported (warrend --check
// lists it). Never a crash, never a message served that was not stored as it is.
//
// Each victim runs in a forked child, so a crash is a test failure rather than the end of
// the test. WARREN_CORRUPTION_SEED reproduces a run.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "broker_util.h"
#include "storage/check.h"

namespace warren {
namespace {

namespace fs = std::filesystem;
using namespace warren::testing;

constexpr int kQueues = 3, kPerQueue = 500;

std::string body(int queue, int n) {
  return fmt::format("q{}-m{}-", queue, n) + std::string(size_t(n % 300), char('a' + n % 26));
}

// Builds a store: three durable queues of 500 persistent messages; the first 50 of each
// acknowledged. `crash` leaves it as a kill -9 would (journal records pending).
void build_store(const std::string& dir, bool crash) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto broker = Broker::open({.data_dir = dir, .durability = Durability::fsync});
    auto ch = broker->channel();
    ch.confirm_select();
    for (int q = 0; q < kQueues; ++q) {
      ch.queue_declare(fmt::format("q{}", q), {.durable = true});
      for (int n = 0; n < kPerQueue; ++n) ch.basic_publish("", fmt::format("q{}", q), persistent(body(q, n)));
    }
    if (!ch.wait_for_confirms(60s)) _exit(2);
    for (int q = 0; q < kQueues; ++q)
      for (int n = 0; n < 50; ++n) {
        auto d = ch.basic_get(fmt::format("q{}", q));
        if (!d) _exit(3);
        ch.basic_ack(d->delivery_tag);
      }
    ch.flush();
    if (crash) _exit(0);  // no clean close
    broker.reset();
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

struct Served {
  int served = 0, wrong = 0, missing = 0;
  std::set<std::pair<int, int>> seen;  // (queue, message)
};

// Opens the store at dir as a broker and takes every message of every queue. Each body
// names its message: it must be one that was stored, not acknowledged, and served once.
Served serve_all(const std::string& dir) {
  Served out;
  auto broker = Broker::open({.data_dir = dir, .durability = Durability::fsync});
  auto ch = broker->channel();
  for (int q = 0; q < kQueues; ++q) {
    std::string name = fmt::format("q{}", q);
    int found = 0;
    try {
      while (auto d = ch.basic_get(name, true)) {
        ++out.served;
        int n = -1;
        if (std::sscanf(d->message.body.c_str(), ("q" + std::to_string(q) + "-m%d-").c_str(), &n) != 1 ||
            n < 50 || n >= kPerQueue || d->message.body != body(q, n) || !out.seen.insert({q, n}).second)
          ++out.wrong;
        else
          ++found;
      }
    } catch (const Error&) {
      ch = broker->channel();  // the queue is gone: all of it is missing
    }
    out.missing += kPerQueue - 50 - found;
  }
  return out;
}

struct Outcome {
  bool crashed = false;
  bool refused = false;
  int served = 0, wrong = 0, missing = 0, problems = 0;
  std::string detail;
};

// Opens the damaged store in a child, reads every queue, and reports what it saw.
Outcome victim(const std::string& dir) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    std::string report;
    try {
      // The check first, as an operator would: serving deletes the damaged records it meets.
      storage::StoreOptions o;
      o.path = dir;
      auto check = storage::check_store(o);
      if (!check.ok()) throw Error(check.status());
      int problems = int(check->problems.size());
      Served got = serve_all(dir);
      int served = got.served, wrong = got.wrong, missing = got.missing;
      report = fmt::format("opened {} {} {} {}", served, wrong, missing, problems);
    } catch (const Error& e) {
      report = "refused " + e.status().text();
    }
    (void)!write(fds[1], report.data(), report.size());
    _exit(0);
  }
  close(fds[1]);
  std::string report(4096, '\0');
  ssize_t n = read(fds[0], report.data(), report.size());
  close(fds[0]);
  report.resize(n > 0 ? size_t(n) : 0);
  int status = 0;
  waitpid(pid, &status, 0);
  Outcome out;
  out.detail = report;
  if (!WIFEXITED(status) || report.empty()) {
    out.crashed = true;
    out.detail = WIFSIGNALED(status) ? fmt::format("killed by signal {}", WTERMSIG(status)) : "no report";
  } else if (report.starts_with("refused")) {
    out.refused = true;
  } else {
    std::sscanf(report.c_str(), "opened %d %d %d %d", &out.served, &out.wrong, &out.missing, &out.problems);
  }
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}
void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), std::streamsize(bytes.size()));
}

class Corruption : public ::testing::TestWithParam<bool> {  // param: left by a crash
 protected:
  void SetUp() override {
    build_store(pristine.path(), GetParam());
    seed = std::getenv("WARREN_CORRUPTION_SEED") ? std::strtoull(std::getenv("WARREN_CORRUPTION_SEED"), nullptr, 10)
                                                 : std::random_device{}();
    rng.seed(seed);
  }
  // A fresh copy of the pristine store, damaged by `damage`, then opened by a victim.
  void expect_safe(const std::string& what, const std::function<void(const std::string& dir)>& damage) {
    TempDir copy;
    for (const auto& entry : fs::directory_iterator(pristine.path()))
      if (entry.is_regular_file()) fs::copy_file(entry.path(), copy.sub(entry.path().filename().string()));
    damage(copy.path());
    if (const char* keep = std::getenv("WARREN_CORRUPTION_KEEP")) {  // for a post-mortem: damaged copies
      std::string to = fmt::format("{}/{}", keep, kept++);
      fs::create_directories(to);
      for (const auto& entry : fs::directory_iterator(copy.path()))
        if (entry.is_regular_file()) fs::copy_file(entry.path(), to + "/" + entry.path().filename().string());
    }
    Outcome o = victim(copy.path());
    std::string where = fmt::format("{} (crashed store: {}, seed {}): {}", what, GetParam(), seed, o.detail);
    EXPECT_FALSE(o.crashed) << where;
    EXPECT_EQ(o.wrong, 0) << "wrong data served: " << where;
    if (!o.crashed && !o.refused && o.missing > 0) {
      EXPECT_GT(o.problems, 0) << "a silent loss: " << where;
    }
    if (std::getenv("WARREN_CORRUPTION_VERBOSE")) std::fprintf(stderr, "%s\n", where.c_str());
    ++outcomes[o.crashed ? "crashed" : o.refused ? "refused" : o.missing ? "loss detected" : "intact"];
  }
  // Flips one bit of the byte at `at` (taken modulo the file's size).
  void flip(const std::string& file, uint64_t at, int bit) {
    std::string bytes = read_file(file);
    if (bytes.empty()) return;
    bytes[at % bytes.size()] ^= char(1 << bit);
    write_file(file, bytes);
  }
  // The bytes of a pristine file worth damaging: data.mdb may be allocated past its pages.
  uint64_t span(const std::string& name, uint64_t cap) {
    std::error_code ec;
    return std::max<uint64_t>(1, std::min<uint64_t>(fs::file_size(pristine.path() + "/" + name, ec), cap));
  }

  TempDir pristine;
  uint64_t seed = 0;
  std::mt19937_64 rng;
  std::map<std::string, int> outcomes;
  int kept = 0;

  void TearDown() override {
    std::string summary;
    for (auto& [kind, n] : outcomes) summary += fmt::format(" {} {}", n, kind);
    RecordProperty("outcomes", summary);
    std::fprintf(stderr, "outcomes:%s\n", summary.c_str());
  }
};

TEST_P(Corruption, FlippedBytesInTheDataFile) {
  for (int i = 0; i < 40; ++i) {
    uint64_t at = rng() % span("data.mdb", 4 << 20);
    int bit = int(rng() % 8);
    expect_safe(fmt::format("data.mdb byte {} bit {} flipped", at, bit),
                [&](const std::string& dir) { flip(dir + "/data.mdb", at, bit); });
  }
}

TEST_P(Corruption, ZeroedPagesOfTheDataFile) {
  for (int i = 0; i < 15; ++i) {
    uint64_t page = rng() % (span("data.mdb", 4 << 20) / 4096);
    expect_safe(fmt::format("data.mdb page {} zeroed", page), [&](const std::string& dir) {
      std::string file = dir + "/data.mdb";
      std::string bytes = read_file(file);
      std::fill_n(bytes.begin() + std::ptrdiff_t(page * 4096), 4096, '\0');
      write_file(file, bytes);
    });
  }
}

TEST_P(Corruption, TruncatedFiles) {
  for (std::string name : {"data.mdb", "journal"})
    for (double keep : {0.0, 0.3, 0.9}) {
      expect_safe(fmt::format("{} cut to {}", name, keep), [&](const std::string& dir) {
        std::string file = dir + "/" + name;
        if (!fs::exists(file)) return;
        fs::resize_file(file, uint64_t(double(fs::file_size(file)) * keep) / 4096 * 4096);
      });
    }
}

TEST_P(Corruption, DamagedJournal) {
  // Each checkpoint header slot, the first records, and bytes anywhere.
  std::vector<uint64_t> places = {10, 4096 + 10, 8192 + 30, 8192 + 4096 + 30};
  for (int i = 0; i < 10; ++i) places.push_back(rng() % span("journal", 1 << 20));
  for (uint64_t at : places) {
    int bit = int(rng() % 8);
    expect_safe(fmt::format("journal byte {} bit {} flipped", at, bit), [&](const std::string& dir) {
      if (fs::exists(dir + "/journal")) flip(dir + "/journal", at, bit);
    });
  }
}

// Where in data.mdb the body of message n of queue q lies: its record, and any copies left
// in freed pages (which must be damaged too, as the live one is not known).
std::vector<uint64_t> offsets_of(const std::string& dir, int q, int n) {
  std::string bytes = read_file(dir + "/data.mdb");
  std::vector<uint64_t> found;
  for (size_t at = bytes.find(body(q, n)); at != std::string::npos; at = bytes.find(body(q, n), at + 1))
    found.push_back(at);
  EXPECT_FALSE(found.empty());
  return found;
}

storage::StoreOptions store_at(const std::string& dir) {
  storage::StoreOptions o;
  o.path = dir;
  return o;
}

TEST(Salvage, ADamagedRecordIsReportedAndLeftBehindAndTheRestIsCopied) {
  TempDir damaged, salvaged;
  build_store(damaged.path(), false);
  std::string file = damaged.path() + "/data.mdb";
  std::string bytes = read_file(file);
  for (uint64_t at : offsets_of(damaged.path(), 1, 300)) bytes[at + 5] ^= 1;  // only its checksum shows it
  write_file(file, bytes);

  auto check = storage::check_store(store_at(damaged.path()));
  ASSERT_TRUE(check.ok()) << check.status().text();
  ASSERT_EQ(check->problems.size(), 1u) << fmt::format("{}", fmt::join(check->problems, "; "));
  EXPECT_EQ(check->problems[0].rfind("messages: message ", 0), 0u) << check->problems[0];

  auto report = storage::salvage_store(store_at(damaged.path()), store_at(salvaged.path()));
  ASSERT_TRUE(report.ok()) << report.status().text();
  EXPECT_EQ(report->lost.size(), 1u);
  EXPECT_EQ(report->messages, uint64_t(kQueues * (kPerQueue - 50) - 1));
  EXPECT_GE(report->definitions, uint64_t(kQueues));
  auto after = storage::check_store(store_at(salvaged.path()));
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->clean()) << fmt::format("{}", fmt::join(after->problems, "; "));
  Served got = serve_all(salvaged.path());
  EXPECT_EQ(got.wrong, 0);
  EXPECT_EQ(got.missing, 1);
  EXPECT_FALSE(got.seen.count({1, 300}));
}

TEST(Salvage, AStoreWithADamagedPageIsRefusedAndSalvagedAroundThePage) {
  TempDir damaged, salvaged;
  build_store(damaged.path(), false);
  std::string file = damaged.path() + "/data.mdb";
  std::string bytes = read_file(file);
  for (uint64_t at : offsets_of(damaged.path(), 1, 300))
    std::fill_n(bytes.begin() + std::ptrdiff_t(at / 4096 * 4096), 4096, '\0');
  write_file(file, bytes);

  EXPECT_THROW(Broker::open({.data_dir = damaged.path(), .durability = Durability::fsync}), Error);
  auto check = storage::check_store(store_at(damaged.path()));
  ASSERT_TRUE(check.ok()) << check.status().text();
  ASSERT_FALSE(check->clean());
  std::string problems = fmt::format("{}", fmt::join(check->problems, "; "));
  EXPECT_NE(problems.find("names itself page 0"), std::string::npos) << problems;

  auto report = storage::salvage_store(store_at(damaged.path()), store_at(salvaged.path()));
  ASSERT_TRUE(report.ok()) << report.status().text();
  EXPECT_FALSE(report->lost.empty());
  int expected = kQueues * (kPerQueue - 50);
  EXPECT_LT(report->messages, uint64_t(expected));
  EXPECT_GT(report->messages, uint64_t(expected - 100)) << "one page holds a few dozen of these messages";
  Served got = serve_all(salvaged.path());
  EXPECT_EQ(got.wrong, 0);
  EXPECT_EQ(got.served, int(report->messages));
  EXPECT_FALSE(got.seen.count({1, 300}));
  EXPECT_TRUE(storage::check_store(store_at(salvaged.path()))->clean());
}

// A regression: one bit of a value's size made its node overlap the next one; LMDB then
// copied past the page when the message was deleted (found by FlippedBytesInTheDataFile).
TEST(PageAudit, AValueSizeThatRunsIntoTheNextNodeIsRefused) {
  TempDir damaged;
  build_store(damaged.path(), false);
  std::string file = damaged.path() + "/data.mdb";
  std::string bytes = read_file(file);
  auto u16 = [&](size_t offset) { return uint16_t(uint8_t(bytes[offset]) | uint8_t(bytes[offset + 1]) << 8); };
  bool hit = false;
  for (uint64_t at : offsets_of(damaged.path(), 1, 300)) {  // the live copy and any stale ones
    const size_t page = at / 4096 * 4096;
    for (size_t slot = page + 16; slot < page + u16(page + 12); slot += 2) {  // the node offsets
      size_t node = page + u16(slot), data = node + 8 + u16(node + 6);
      if (data <= at && at < data + u16(node)) {
        bytes[node] = char(uint8_t(bytes[node]) + 2);  // its size: two more, past an even size
        hit = true;
      }
    }
  }
  ASSERT_TRUE(hit) << "no node holds the message";
  write_file(file, bytes);
  try {
    Broker::open({.data_dir = damaged.path(), .durability = Durability::fsync});
    ADD_FAILURE() << "a page whose nodes overlap was opened";
  } catch (const Error& e) {
    EXPECT_NE(e.status().text().find("overlap"), std::string::npos) << e.status().text();
  }
}

TEST(Salvage, RefusesToWriteOverAStore) {
  TempDir from, to;
  build_store(from.path(), false);
  build_store(to.path(), false);
  auto report = storage::salvage_store(store_at(from.path()), store_at(to.path()));
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.status().text().find("already holds one"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Stores, Corruption, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Crashed" : "Closed"; });

}  // namespace
}  // namespace warren
