// A queue. Ready messages live in the store, not on the heap (invariant D4): in memory a
// queue keeps only positions — where the next unread message is, which earlier messages
// were returned — plus the few messages whose commit is still in flight.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/dead_letter.h"
#include "core/types.h"
#include "storage/store.h"
#include "warren/field_table.h"

namespace warren::core {

class Engine;
class Channel;
struct Connection;

struct Consumer {
  std::string tag;
  Channel* channel = nullptr;
  std::shared_ptr<class Queue> queue;
  bool no_ack = false;
  bool exclusive = false;
  uint32_t prefetch = 0;  // 0 = unlimited
  uint32_t unacked = 0;
  bool cancelled = false;
};

// One message taken off the queue for delivery.
struct Taken {
  uint64_t seq = 0;
  storage::Db db = storage::Db::messages;
  bool redelivered = false;
  MessagePtr message;
};

class Queue : public std::enable_shared_from_this<Queue> {
 public:
  Queue(Engine& engine, uint64_t id, std::string vhost, std::string name);

  // --- identity and declaration -----------------------------------------------------
  const uint64_t id;
  const std::string vhost;
  const std::string name;
  bool durable = false;
  bool exclusive = false;
  bool auto_delete = false;
  FieldTable arguments;
  Connection* owner = nullptr;  // exclusive queues only
  bool had_consumer = false;    // auto-delete applies only once a consumer came and went
  std::optional<DeadLetterTarget> dead_letter;  // x-dead-letter-exchange / -routing-key
  bool deleted = false;

  // --- recovery ---------------------------------------------------------------------
  // Positions from the store: messages [first, next) with `count` of them present, and
  // everything below delivered_mark possibly delivered before.
  void recover(uint64_t first, uint64_t next, uint64_t count, uint64_t delivered_mark);
  // The mark to persist at open and at a clean close.
  uint64_t delivered_mark_for_open();  // also for a queue declared just now
  uint64_t delivered_mark_for_close() const;

  // --- messages ---------------------------------------------------------------------
  // Stores the message; returns the writer batch whose commit makes it durable here
  // (0 when the queue does not keep it on disk across restarts).
  uint64_t enqueue(MessagePtr message);
  std::optional<Taken> take_next();
  // A message of this queue by position (from memory or the store); null if gone.
  MessagePtr peek(uint64_t seq, storage::Db db) { return load(seq, db); }
  // A delivered message comes back to its original position, marked redelivered.
  void requeue(uint64_t seq, storage::Db db);
  // A delivered message is settled for good.
  void remove(uint64_t seq, storage::Db db, uint64_t body_bytes);
  uint32_t purge();
  // Drops every message and the queue's records from the store.
  void drop_storage();
  void on_batch_done(uint64_t batch, bool ok);
  bool has_inflight_commits() const { return !tail_.empty(); }

  uint64_t ready() const { return ready_; }
  uint64_t unacked() const { return unacked_; }

  // --- consumers --------------------------------------------------------------------
  std::vector<std::shared_ptr<Consumer>> consumers;
  void schedule_dispatch();
  void add_unacked() { ++unacked_; }

 private:
  struct TailEntry {
    MessagePtr message;
    uint64_t batch;
    storage::Db db;
  };
  void dispatch();
  MessagePtr load(uint64_t seq, storage::Db db);
  std::optional<Taken> take_stored();
  void note_delivered(uint64_t seq);

  Engine& engine_;
  uint64_t next_seq_ = 1;                     // the next publish gets this
  uint64_t stream_seq_ = 1;                   // the first message never taken yet
  std::map<uint64_t, storage::Db> returned_;  // requeued, all below stream_seq_
  std::deque<TailEntry> tail_;                // uncommitted messages, seqs [tail_base_, next_seq_)
  uint64_t tail_base_ = 1;
  uint64_t ready_ = 0;
  uint64_t unacked_ = 0;
  uint64_t redelivered_below_ = 0;  // from the store: possibly delivered before a restart
  uint64_t mark_requested_ = 0;     // the delivered mark last sent to the writer
  bool has_transient_ = false;      // anything in the transient db since open
  bool dispatch_scheduled_ = false;
  size_t round_robin_ = 0;
};

}  // namespace warren::core
