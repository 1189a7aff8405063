// Invariants D1 and D3 under kill -9. A child process publishes persistent messages with
// confirms and acknowledges some, reporting on a pipe: "C id" once a message is confirmed,
// "G id" before it acknowledges one, "A id" once that ack is on disk. The parent kills the
// child at random moments and, after each kill, opens the store and checks that every
// confirmed message is there (unless it was being acknowledged), that no acknowledged
// message came back (the child's, or the parent's own from earlier rounds), and that no
// message is there twice.
//
// The second test does the same with a queue that dead-letters (x-delivery-limit 2 and
// consumer rejects) and delays retries (x-requeue-delay): after every kill, each confirmed
// message that was not acknowledged is in exactly one of the two queues.
//
// The third uses a priority queue with a single active consumer: after every kill the
// messages come out highest priority first and in publish order within each priority, all
// to the first consumer registered even when a later one has a higher x-priority.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>

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

// Puts the publisher in confirm mode and says "C id" for each confirmed message, the
// channel's n-th publish being id start + n - 1.
void report_confirms(Channel& publisher, uint64_t start) {
  publisher.confirm_select();
  struct Reported {
    std::mutex m;
    uint64_t upto = 0;
  };
  auto reported = std::make_shared<Reported>();
  publisher.on_confirm([reported, start](uint64_t seq, bool multiple, bool ack) {
    if (!ack) return;
    std::lock_guard lock(reported->m);
    for (uint64_t s = multiple ? reported->upto + 1 : seq; s <= seq; ++s) say('C', start + s - 1);
    reported->upto = std::max(reported->upto, seq);
  });
}

constexpr const char* kDead = "crash-dead";

FieldTable retrying_queue_args() {
  FieldTable a;
  a.set("x-dead-letter-exchange", FieldValue(""));
  a.set("x-dead-letter-routing-key", FieldValue(kDead));
  a.set("x-delivery-limit", FieldValue(int32_t(2)));
  a.set("x-requeue-delay", FieldValue(int32_t(3)));
  return a;
}

void declare_retrying(Channel& ch) {
  ch.queue_declare(kDead, {.durable = true});
  ch.queue_declare(kQueue, {.durable = true, .arguments = retrying_queue_args()});
}

[[noreturn]] void run_retry_child(const std::string& dir, uint64_t start) {
  auto broker = Broker::open({.data_dir = dir, .durability = Durability::fsync});
  auto publisher = broker->channel();
  auto worker = broker->channel();
  declare_retrying(publisher);
  report_confirms(publisher, start);
  for (uint64_t i = 0;; ++i) {
    publisher.basic_publish("", kQueue, persistent(std::to_string(start + i)));
    if (i % 16 == 15) publisher.wait_for_confirms(60s);
    if (auto d = worker.basic_get(kQueue)) {
      uint64_t got = std::stoull(d->message.body);
      switch (got % 4) {
        case 0:  // done
          say('G', got);
          worker.basic_ack(d->delivery_tag);
          worker.flush();
          say('A', got);
          break;
        case 1:  // straight to the dead-letter queue
          worker.basic_reject(d->delivery_tag, false);
          break;
        default:  // retried after a delay until the delivery limit dead-letters it
          worker.basic_nack(d->delivery_tag, false, true);
      }
    }
  }
}

[[noreturn]] void run_child(const std::string& dir, uint64_t start) {
  auto broker = Broker::open({.data_dir = dir, .durability = Durability::fsync});
  auto publisher = broker->channel();
  auto getter = broker->channel();
  publisher.queue_declare(kQueue, {.durable = true});
  report_confirms(publisher, start);
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

constexpr const char* kPriorityQueue = "crash-priority";

FieldTable priority_queue_args() {
  FieldTable a;
  a.set("x-max-priority", FieldValue(int32_t(9)));
  a.set("x-single-active-consumer", FieldValue(true));
  return a;
}

Message prioritized(uint64_t id) {
  Message m = persistent(std::to_string(id));
  m.properties.priority = uint8_t(id % 10);
  return m;
}

[[noreturn]] void run_priority_child(const std::string& dir, uint64_t start) {
  auto broker = Broker::open({.data_dir = dir, .durability = Durability::fsync});
  auto publisher = broker->channel();
  auto getter = broker->channel();
  publisher.queue_declare(kPriorityQueue, {.durable = true, .arguments = priority_queue_args()});
  report_confirms(publisher, start);
  for (uint64_t i = 0;; ++i) {
    publisher.basic_publish("", kPriorityQueue, prioritized(start + i));
    if (i % 64 == 63) publisher.wait_for_confirms(60s);
    if (i % 8 == 7) {
      if (auto d = getter.basic_get(kPriorityQueue)) {
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

// After a kill: every confirmed message is present (unless it was being acknowledged:
// either way is right), no acknowledged one came back, none is there twice.
void check_round(int round, const Round& r, const std::multiset<uint64_t>& present,
                 const std::set<uint64_t>& all_acked) {
  for (uint64_t id : r.confirmed) {
    if (r.got.count(id)) continue;
    ASSERT_TRUE(present.count(id)) << "round " << round << ": confirmed " << id << " lost";
  }
  for (uint64_t id : all_acked)
    ASSERT_FALSE(present.count(id)) << "round " << round << ": acked " << id << " is back";
  for (uint64_t id : present)
    ASSERT_EQ(present.count(id), 1u) << "round " << round << ": " << id << " in two places";
}

// The next round's ids start above every id seen so far.
uint64_t next_start(uint64_t start, const Round& r, const std::multiset<uint64_t>& present) {
  uint64_t highest = start;
  for (const auto* s : {&r.confirmed, &r.got})
    if (!s->empty()) highest = std::max(highest, *s->rbegin());
  if (!present.empty()) highest = std::max(highest, *present.rbegin());
  return highest + 1;
}

// Starts the child, lets it run for `run_for`, kills it, returns what it said.
std::string run_and_kill(const std::string& dir, uint64_t start,
                         std::chrono::milliseconds run_for, const char* mode) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    std::string start_arg = std::to_string(start);
    // Under an emulator (qemu-user, for arm64), /proc/self/exe is the emulator: the child
    // is this binary run through it again.
    if (const char* emulator = std::getenv("WARREN_TEST_EMULATOR"); emulator && *emulator) {
      char self[4096];
      ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);  // the emulated binary
      if (n <= 0) _exit(127);
      self[n] = '\0';
      execlp(emulator, emulator, self, mode, dir.c_str(), start_arg.c_str(), nullptr);
    } else {
      execl("/proc/self/exe", "crash_test", mode, dir.c_str(), start_arg.c_str(), nullptr);
    }
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

// Kills the child `mode` at random moments, `rounds` times. After each kill, `collect`
// takes every message left in the store (from the reopened broker) and the round is checked;
// the parent then acknowledges them all, which must hold across the next kills too and keeps
// every round's check small. Returns how many confirms the child reported.
size_t kill_rounds(const char* mode, int rounds,
                   const std::function<std::multiset<uint64_t>(Broker&, Channel&)>& collect) {
  TempDir dir;
  const std::string data = dir.sub("data");
  unsigned seed = unsigned(std::random_device{}());
  std::mt19937 rng(seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::uniform_int_distribution<int> pause_ms(20, 250);
  std::set<uint64_t> all_acked;
  uint64_t start = 1;
  size_t total_confirmed = 0;
  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    Round r;
    parse(run_and_kill(data, start, std::chrono::milliseconds(pause_ms(rng)), mode), r);
    all_acked.insert(r.acked.begin(), r.acked.end());
    total_confirmed += r.confirmed.size();

    auto broker = Broker::open({.data_dir = data, .durability = Durability::fsync});
    auto ch = broker->channel();
    std::multiset<uint64_t> present = collect(*broker, ch);
    if (::testing::Test::HasFatalFailure()) return total_confirmed;
    check_round(round, r, present, all_acked);
    if (::testing::Test::HasFatalFailure()) return total_confirmed;
    ch.basic_ack(0, true);
    ch.flush();
    all_acked.insert(present.begin(), present.end());
    start = next_start(start, r, present);
  }
  EXPECT_FALSE(all_acked.empty());
  return total_confirmed;
}

TEST(Crash, ConfirmedMessagesSurviveKillNineAndAckedOnesStayGone) {
  constexpr int kRounds = 24;
  size_t confirmed = kill_rounds("--crash-child", kRounds, [](Broker&, Channel& ch) {
    ch.queue_declare(kQueue, {.durable = true});
    std::multiset<uint64_t> present;
    while (auto d = ch.basic_get(kQueue)) present.insert(std::stoull(d->message.body));
    return present;
  });
  EXPECT_GT(confirmed, size_t(kRounds)) << "the child hardly ever got a confirm in";
}

TEST(Crash, DeadLetterMovesAndDelayedRetriesLeaveEveryMessageInExactlyOnePlace) {
  constexpr int kRounds = 16;
  size_t total_dead = 0;
  size_t confirmed = kill_rounds("--retry-child", kRounds, [&](Broker& broker, Channel& ch) {
    declare_retrying(ch);
    std::multiset<uint64_t> present;
    // Delayed retries come back after a few ms; wait until none is held.
    auto delayed = [&] {
      for (auto& q : broker.list_queues())
        if (q.messages_delayed) return true;
      return false;
    };
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (delayed() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(2ms);
    EXPECT_FALSE(delayed()) << "a delayed retry never came back";
    for (const char* q : {kQueue, kDead})
      while (auto d = ch.basic_get(q)) {
        present.insert(std::stoull(d->message.body));
        total_dead += q == std::string(kDead);
      }
    return present;
  });
  EXPECT_GT(confirmed, size_t(kRounds));
  EXPECT_GT(total_dead, 0u) << "nothing was ever dead-lettered: the test checked nothing";
}

TEST(Crash, PriorityOrderAndTheSingleActiveConsumerHoldAfterEveryKill) {
  constexpr int kRounds = 16;
  Inbox first, second;  // outlive every round's broker, which may deliver while it closes
  size_t confirmed = kill_rounds("--priority-child", kRounds, [&](Broker& broker, Channel& ch) {
    ch.queue_declare(kPriorityQueue, {.durable = true, .arguments = priority_queue_args()});
    const uint64_t ready = info(broker, kPriorityQueue).messages_ready;
    ch.basic_consume(kPriorityQueue, first.callback(), {.arguments = args({{"x-priority", FieldValue(int32_t(1))}})});
    ch.basic_consume(kPriorityQueue, second.callback(), {.arguments = args({{"x-priority", FieldValue(int32_t(5))}})});
    std::multiset<uint64_t> present;
    std::pair<uint64_t, uint64_t> previous{10, 0};  // (priority, id) of the last one out
    for (uint64_t n = 0; n < ready; ++n) {
      auto d = first.next();
      EXPECT_TRUE(d) << "the active consumer got " << n << " of " << ready;
      if (!d) break;
      uint64_t id = std::stoull(d->message.body), priority = id % 10;
      EXPECT_TRUE(priority < previous.first || (priority == previous.first && id > previous.second))
          << id << " (priority " << priority << ") came out after " << previous.second;
      previous = {priority, id};
      present.insert(id);
    }
    EXPECT_EQ(second.size(), 0u) << "the inactive consumer received messages";
    return present;
  });
  EXPECT_GT(confirmed, size_t(kRounds));
}

}  // namespace
}  // namespace warren

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "--priority-child")
    warren::run_priority_child(argv[2], std::stoull(argv[3]));
  if (argc == 4 && std::string(argv[1]) == "--crash-child")
    warren::run_child(argv[2], std::stoull(argv[3]));
  if (argc == 4 && std::string(argv[1]) == "--retry-child")
    warren::run_retry_child(argv[2], std::stoull(argv[3]));
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
