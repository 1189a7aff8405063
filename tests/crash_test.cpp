// Invariants D1 and D3 under kill -9. A child process publishes persistent messages with
// confirms and acknowledges some, reporting on a pipe: "C id" once a message is confirmed,
// "G id" before it acknowledges one, "A id" once that ack is on disk. The parent kills the
// child at random moments and, after each kill, opens the store and checks that every
// confirmed message is there (unless it was being acknowledged), that no acknowledged
// message came back (the child's, or the parent's own from earlier rounds), and that no
// message is there twice.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>

#include "broker_util.h"
#include "test_util.h"

namespace warren {
namespace {

using namespace warren::testing;
constexpr const char* kQueue = "crash";

void say(char kind, uint64_t id) {
  char line[32];
  int n = std::snprintf(line, sizeof line, "%c %llu\n", kind, (unsigned long long)id);
  (void)!write(STDOUT_FILENO, line, size_t(n));  // one short write: atomic on a pipe
}

[[noreturn]] void run_child(const std::string& dir, uint64_t start) {
  auto broker = Broker::open({.data_dir = dir, .durability = Durability::fsync});
  auto publisher = broker->channel();
  auto getter = broker->channel();
  publisher.queue_declare(kQueue, {.durable = true});
  publisher.confirm_select();
  std::mutex m;
  uint64_t reported = 0;  // confirmed sequence numbers reported so far
  publisher.on_confirm([&](uint64_t seq, bool multiple, bool ack) {
    if (!ack) return;
    std::lock_guard lock(m);
    for (uint64_t s = multiple ? reported + 1 : seq; s <= seq; ++s) say('C', start + s - 1);
    reported = std::max(reported, seq);
  });
  for (uint64_t i = 0;; ++i) {
    uint64_t id = start + i;
    Message msg = persistent(std::to_string(id));
    msg.properties.message_id = std::to_string(id);
    publisher.basic_publish("", kQueue, std::move(msg));
    if (i % 64 == 63) publisher.wait_for_confirms(60s);
    if (i % 8 == 7) {
      if (auto d = getter.basic_get(kQueue)) {
        uint64_t got = std::stoull(d->message.body);
        say('G', got);
        getter.basic_ack(d->delivery_tag);
        getter.flush();
        say('A', got);
      }
    }
  }
}

struct Round {
  std::set<uint64_t> confirmed, got, acked;
};

void parse(const std::string& text, Round& r) {
  std::istringstream in(text);
  char kind;
  uint64_t id;
  while (in >> kind >> id) {
    if (kind == 'C') r.confirmed.insert(id);
    if (kind == 'G') r.got.insert(id);
    if (kind == 'A') r.acked.insert(id);
  }
}

// Starts the child, lets it run for `run_for`, kills it, returns what it said.
std::string run_and_kill(const std::string& dir, uint64_t start,
                         std::chrono::milliseconds run_for) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    std::string start_arg = std::to_string(start);
    execl("/proc/self/exe", "crash_test", "--crash-child", dir.c_str(), start_arg.c_str(), nullptr);
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  auto deadline = std::chrono::steady_clock::now() + run_for;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fds[0], POLLIN, 0};
    if (poll(&p, 1, int(left.count())) <= 0) continue;
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, size_t(n));
  }
  kill(pid, SIGKILL);
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) out.append(buf, size_t(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "the child ended on its own";
  return out;
}

TEST(Crash, ConfirmedMessagesSurviveKillNineAndAckedOnesStayGone) {
  TempDir dir;
  const std::string data = dir.sub("data");
  unsigned seed = unsigned(std::random_device{}());
  std::mt19937 rng(seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::uniform_int_distribution<int> pause_ms(20, 250);
  std::set<uint64_t> all_acked;
  uint64_t start = 1;
  size_t total_confirmed = 0;
  constexpr int kRounds = 24;
  for (int round = 0; round < kRounds; ++round) {
    Round r;
    parse(run_and_kill(data, start, std::chrono::milliseconds(pause_ms(rng))), r);
    all_acked.insert(r.acked.begin(), r.acked.end());
    total_confirmed += r.confirmed.size();

    auto broker = Broker::open({.data_dir = data, .durability = Durability::fsync});
    auto ch = broker->channel();
    ch.queue_declare(kQueue, {.durable = true});
    std::multiset<uint64_t> present;
    while (auto d = ch.basic_get(kQueue)) present.insert(std::stoull(d->message.body));
    for (uint64_t id : r.confirmed) {
      if (r.got.count(id)) continue;  // being acknowledged when killed: either way is right
      ASSERT_TRUE(present.count(id)) << "round " << round << ": confirmed " << id << " lost";
    }
    for (uint64_t id : all_acked)
      ASSERT_FALSE(present.count(id)) << "round " << round << ": acked " << id << " is back";
    for (uint64_t id : present)
      ASSERT_EQ(present.count(id), 1u) << "round " << round << ": " << id << " twice";
    // The parent's own acks must hold across the next crashes as well; they also keep
    // every round's check small.
    ch.basic_ack(0, true);
    ch.flush();
    all_acked.insert(present.begin(), present.end());
    uint64_t highest = start;
    for (const auto* s : {&r.confirmed, &r.got})
      if (!s->empty()) highest = std::max(highest, *s->rbegin());
    if (!present.empty()) highest = std::max(highest, *present.rbegin());
    start = highest + 1;
  }
  EXPECT_GT(total_confirmed, size_t(kRounds)) << "the child hardly ever got a confirm in";
  EXPECT_FALSE(all_acked.empty());
}

}  // namespace
}  // namespace warren

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "--crash-child")
    warren::run_child(argv[2], std::stoull(argv[3]));
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
