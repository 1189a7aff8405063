// Random sequences of publish, get, ack, nack and reject (with and without requeue), expiry,
// delayed retry, length limits, delivery limits, dead-lettering, purge, channel close and
// restart, run against a real broker on a real store and against a small reference model
// of RabbitMQ's queue semantics written here; the two are compared after every step.
//
// WARREN_MODEL_SEED=N reproduces a run (a failure prints its seed); WARREN_MODEL_OPS sets
// its length (100 000 by default).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <set>

#include "broker_util.h"

namespace warren {
namespace {

using namespace warren::testing;

// One message as the model knows it.
struct Msg {
  uint64_t id = 0;      // the body
  uint64_t key = 0;     // its place in its queue: the order it arrived in
  uint32_t count = 0;   // returns to the queue (x-delivery-count)
  bool delivered = false;
};

// A queue in the model: ready messages in arrival order (a returned message goes back to
// its place), and those held for a retry.
struct ModelQueue {
  std::map<uint64_t, Msg> ready;  // by key
  std::map<uint64_t, Msg> delayed;
  uint64_t next_key = 1;
};

// RabbitMQ's rules for the three queues of the test:
//   work:  x-max-length 50 (drop-head), x-delivery-limit 3, dead-letters into "dead"
//   retry: x-requeue-delay of an hour (a nacked message waits), dead-letters into "dead"
//   dead:  a plain queue
class Model {
 public:
  static constexpr size_t kMaxLength = 50;
  static constexpr uint32_t kDeliveryLimit = 3;

  void publish(const std::string& q, uint64_t id, bool expire_now) {
    uint64_t key = enqueue(q, Msg{id});
    ModelQueue& mq = queues[q];
    if (expire_now && mq.ready.count(key)) {  // a TTL of 0 and nobody waiting
      dead_letter(mq.ready[key]);
      mq.ready.erase(key);
    }
  }
  std::optional<Msg> get(const std::string& q) {
    ModelQueue& mq = queues[q];
    if (mq.ready.empty()) return std::nullopt;
    Msg m = mq.ready.begin()->second;
    mq.ready.erase(mq.ready.begin());
    Msg shown = m;
    m.delivered = true;
    unacked.emplace(next_tag, Unacked{q, m});
    return shown;
  }
  void ack(uint64_t tag) { unacked.erase(tag); }
  // A return to the queue: nack/reject(requeue) when `failed`, else a closed channel.
  void give_back(uint64_t tag, bool failed) {
    auto [q, m] = unacked.at(tag);
    unacked.erase(tag);
    if (q != "dead") ++m.count;  // "dead" is a plain queue: it counts nothing
    if (q == "work" && m.count > kDeliveryLimit) return dead_letter(m);
    if (q == "retry" && failed) {
      queues[q].delayed[m.key] = m;
      return;
    }
    queues[q].ready[m.key] = m;
    drop_head(q);
  }
  void reject(uint64_t tag) {
    auto [q, m] = unacked.at(tag);
    unacked.erase(tag);
    if (q != "dead") dead_letter(m);
  }
  void close_channel() {
    auto all = std::move(unacked);
    unacked.clear();
    for (auto& [tag, u] : all) {
      unacked.emplace(tag, u);
      give_back(tag, false);
    }
  }
  uint32_t purge(const std::string& q) {
    auto n = uint32_t(queues[q].ready.size());
    queues[q].ready.clear();
    return n;
  }

  struct Unacked {
    std::string queue;
    Msg msg;
  };
  std::map<std::string, ModelQueue> queues;
  std::map<uint64_t, Unacked> unacked;  // by delivery tag
  uint64_t next_tag = 1;                 // the tag the broker gives the next get

 private:
  uint64_t enqueue(const std::string& q, Msg m) {
    m.key = queues[q].next_key++;
    queues[q].ready[m.key] = m;
    drop_head(q);
    return m.key;
  }
  void drop_head(const std::string& q) {
    if (q != "work") return;
    ModelQueue& mq = queues[q];
    while (mq.ready.size() > kMaxLength) {  // drop-head: the oldest goes
      Msg head = mq.ready.begin()->second;
      mq.ready.erase(mq.ready.begin());
      dead_letter(head);
    }
  }
  // A dead-lettered copy is a new message in "dead".
  void dead_letter(const Msg& m) { enqueue("dead", Msg{m.id}); }
};

class ModelTest : public DurableBrokerTest {
 protected:
  void open_broker() {
    broker = Broker::open({.data_dir = dir.path(), .durability = Durability::nosync});
    ch.emplace(broker->channel());
  }
  void declare() {
    FieldTable dlx = args({{"x-dead-letter-exchange", FieldValue("")},
                           {"x-dead-letter-routing-key", FieldValue("dead")}});
    ch->queue_declare("dead", {.durable = true});
    FieldTable work = dlx;
    work.set("x-max-length", FieldValue(int32_t(Model::kMaxLength)));
    work.set("x-delivery-limit", FieldValue(int32_t(Model::kDeliveryLimit)));
    ch->queue_declare("work", {.durable = true, .arguments = work});
    FieldTable retry = dlx;
    retry.set("x-requeue-delay", FieldValue(int32_t(3'600'000)));
    ch->queue_declare("retry", {.durable = true, .arguments = retry});
  }
  void restart() {
    ch.reset();
    broker.reset();  // a clean stop: the channel's unacked messages go back
    model.close_channel();
    model.next_tag = 1;
    open_broker();
  }
  void new_channel() {
    ch.emplace(broker->channel());
    model.close_channel();
    model.next_tag = 1;
  }

  // Compares what the broker says of each queue with the model; "" if they agree.
  std::string compare() {
    ch->flush();
    std::map<std::string, uint64_t> unacked;
    for (auto& [tag, u] : model.unacked) ++unacked[u.queue];
    for (const auto& q : broker->list_queues()) {
      const ModelQueue& mq = model.queues[q.name];
      uint64_t ready = mq.ready.size();
      if (q.messages_ready != ready || q.messages_unacknowledged != unacked[q.name] ||
          q.messages_delayed != mq.delayed.size())
        return fmt::format("queue {}: broker ready {} unacked {} delayed {}, model {} {} {}", q.name,
                           q.messages_ready, q.messages_unacknowledged, q.messages_delayed, ready,
                           unacked[q.name], mq.delayed.size());
    }
    return "";
  }
  std::string check_get(const std::string& q) {
    auto expected = model.get(q);
    auto got = ch->basic_get(q, false);
    if (!expected && !got) return "";
    if (!expected || !got)
      return fmt::format("get from {}: broker {}, model {}", q, got ? got->message.body : "empty",
                         expected ? std::to_string(expected->id) : "empty");
    uint64_t tag = model.next_tag++;
    std::optional<int64_t> count;
    if (got->message.properties.headers)
      if (const FieldValue* v = got->message.properties.headers->find("x-delivery-count"))
        count = v->as_integer();
    bool counts = q != "dead";
    if (got->message.body != std::to_string(expected->id) || got->delivery_tag != tag ||
        got->redelivered != (expected->delivered || expected->count > 0) ||
        (counts && count != int64_t(expected->count)))
      return fmt::format("get from {}: broker {} tag {} redelivered {} count {}, model {} tag {} "
                         "delivered {} count {}",
                         q, got->message.body, got->delivery_tag, got->redelivered, count.value_or(-1),
                         expected->id, tag, expected->delivered, expected->count);
    return "";
  }

  std::unique_ptr<Broker> broker;
  std::optional<Channel> ch;
  Model model;
};

uint64_t env_or(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v ? std::strtoull(v, nullptr, 10) : fallback;
}

TEST_F(ModelTest, TheBrokerBehavesAsTheModelAfterEveryStep) {
  const uint64_t seed = env_or("WARREN_MODEL_SEED", std::random_device{}());
  const uint64_t ops = env_or("WARREN_MODEL_OPS", 100'000);
  std::mt19937_64 rng(seed);
  auto chance = [&](int percent) { return int(rng() % 100) < percent; };
  auto pick = [&](auto& container) {
    auto it = container.begin();
    std::advance(it, rng() % container.size());
    return it;
  };
  open_broker();
  declare();
  const char* queues[] = {"work", "retry"};
  uint64_t next_id = 1;
  for (uint64_t step = 0; step < ops; ++step) {
    std::string op, mismatch;
    int roll = int(rng() % 100);
    if (roll < 30) {
      const char* q = queues[rng() % 2];
      bool expire_now = chance(5);
      Message m = persistent(std::to_string(next_id));
      if (expire_now) m.properties.expiration.emplace(1, '0');  // (not = "0": GCC 12 -Wrestrict, bug 105329)
      op = fmt::format("publish {} to {}{}", next_id, q, expire_now ? " (ttl 0)" : "");
      ch->basic_publish("", q, std::move(m));
      model.publish(q, next_id++, expire_now);
    } else if (roll < 55) {
      const char* q = roll < 50 ? queues[rng() % 2] : "dead";
      op = fmt::format("get from {}", q);
      mismatch = check_get(q);
    } else if (roll < 70 && !model.unacked.empty()) {
      auto it = pick(model.unacked);
      op = fmt::format("ack {}", it->first);
      ch->basic_ack(it->first);
      model.ack(it->first);
    } else if (roll < 82 && !model.unacked.empty()) {
      auto it = pick(model.unacked);
      uint64_t tag = it->first;
      bool as_reject = chance(50);
      op = fmt::format("{} {} (requeue)", as_reject ? "reject" : "nack", tag);
      as_reject ? ch->basic_reject(tag, true) : ch->basic_nack(tag, false, true);
      model.give_back(tag, true);
    } else if (roll < 88 && !model.unacked.empty()) {
      auto it = pick(model.unacked);
      uint64_t tag = it->first;
      op = fmt::format("reject {} (no requeue)", tag);
      ch->basic_reject(tag, false);
      model.reject(tag);
    } else if (roll < 90) {
      const char* q = queues[rng() % 2];
      op = fmt::format("purge {}", q);
      uint32_t got = ch->queue_purge(q), expected = model.purge(q);
      if (got != expected) mismatch = fmt::format("purge said {}, model {}", got, expected);
    } else if (roll < 96) {
      op = "close the channel";
      ch->close();
      new_channel();
    } else if (roll < 97) {
      op = "restart";
      restart();
    } else {
      continue;
    }
    if (mismatch.empty()) mismatch = compare();
    if (!mismatch.empty()) {
      ADD_FAILURE() << "step " << step << " (" << op << "): " << mismatch
                    << "\n  reproduce with WARREN_MODEL_SEED=" << seed;
      return;
    }
  }
  RecordProperty("seed", std::to_string(seed));
}

}  // namespace
}  // namespace warren
