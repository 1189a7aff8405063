// A queue. Ready messages live in the store, not on the heap (invariant D4): in memory a
// queue keeps only positions (core/queue_positions.h) plus the few messages whose commit is
// still in flight. Everything that writes takes the WriteBatch its caller commits.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/dead_letter.h"
#include "core/dedup_window.h"
#include "core/queue_positions.h"
#include "core/queue_settings.h"
#include "core/types.h"
#include "core/write_batch.h"
#include "storage/store.h"
#include "storage/writer.h"
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

// Wall-clock milliseconds: message expiry and retry times are stored and outlive restarts.
uint64_t now_ms();

// One message taken off the queue for delivery.
struct Taken {
  uint64_t seq = 0;
  storage::Db db = storage::Db::messages;
  bool redelivered = false;
  MessagePtr message;
  bool was_returned = false;  // it came from the returned messages, not the stream
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
  QueueSettings settings;                        // the other arguments
  bool deleted = false;

  // --- recovery ---------------------------------------------------------------------
  // Positions from the store: messages [first, next) with `count` of them present, and
  // everything below delivered_mark possibly delivered before.
  void recover(uint64_t first, uint64_t next, uint64_t count, uint64_t bytes,
               uint64_t delivered_mark);
  // Recovery: a message that waits for its retry time.
  void recover_delayed(uint64_t seq, storage::Db db, uint64_t body_bytes);
  // The mark to persist at open and at a clean close.
  uint64_t delivered_mark_for_open();  // also for a queue declared just now
  uint64_t delivered_mark_for_close() const;

  // --- messages ---------------------------------------------------------------------
  struct Enqueued {
    uint64_t commit = 0;   // the commit that makes it durable here (0: nothing to wait for)
    bool refused = false;  // overflow reject-publish(-dlx): the publisher gets a nack
  };
  Enqueued enqueue(MessagePtr message, WriteBatch& batch);
  std::optional<Taken> take_next(WriteBatch& batch);
  // A message of this queue by position (from memory or the store); null if gone.
  MessagePtr peek(uint64_t seq, storage::Db db) { return load(seq, db); }

  // What became of a delivery. `returned` is a return to the queue: to its original
  // position, marked redelivered, counted and possibly delayed (x-requeue-delay, only when
  // `failed`: the consumer nacked or rejected it) or dead-lettered past x-delivery-limit.
  struct Delivered {
    uint64_t seq;
    storage::Db db;
    uint64_t body_bytes;
    uint64_t expires_at;
  };
  void returned(const Delivered& d, bool failed, WriteBatch& batch);
  void acked(const Delivered& d, WriteBatch& batch);
  void rejected(const Delivered& d, WriteBatch& batch);  // dead-lettered ("rejected") or dropped
  uint32_t purge(WriteBatch& batch);
  // Replay: the ready messages, oldest first, without taking them (at most max).
  void for_each_ready(uint64_t max, const std::function<bool(const MessagePtr&)>& fn);
  // Replay: a message taken with take_next leaves the queue for good.
  void remove_taken(const Taken& t, WriteBatch& batch);
  // Puts a message taken with take_next back where it was.
  void put_back(const Taken& t);
  // Drops every message and the queue's records from the store.
  void drop_storage(WriteBatch& batch);
  // Commits up to outcomes.through have landed or failed.
  void on_commits(const storage::CommitOutcomes& outcomes);
  bool has_inflight_commits() const {
    return !tail_.empty() || positions_.has_removing() || !rewritten_.empty() ||
           (dedup_ && dedup_->has_pending());
  }

  // Timers from the schedule database (Engine::run_schedule), `key` being the entry's key.
  void expiry_due(uint64_t seq, storage::Db db, uint64_t now, std::string_view key, WriteBatch& batch);
  void retry_due(uint64_t seq, std::string_view key, WriteBatch& batch);

  // x-expires: the queue was used (declared, consumed from, got from).
  void touch();
  bool unused_expired(uint64_t now) const;
  uint64_t unused_deadline() const { return unused_deadline_; }

  uint64_t ready() const { return positions_.ready(); }
  uint64_t unacked() const { return unacked_; }
  uint64_t delayed() const { return positions_.delayed(); }
  uint64_t duplicates() const { return duplicates_; }
  const QueuePositions& positions() const { return positions_; }

  // --- consumers --------------------------------------------------------------------
  std::vector<std::shared_ptr<Consumer>> consumers;
  void schedule_dispatch();
  void add_unacked() { ++unacked_; }

 private:
  struct TailEntry {
    MessagePtr message;
    uint64_t commit;
    storage::Db db;
  };
  void dispatch(WriteBatch& batch);
  MessagePtr load(uint64_t seq, storage::Db db);
  std::optional<Taken> take_head(WriteBatch& batch);
  std::optional<Taken> take_stored();
  void note_delivered(uint64_t seq, WriteBatch& batch);
  // Removes a message from the store, dead-lettering it for `reason` when the queue has a
  // dead-letter exchange, in the same commit. Returns that commit.
  uint64_t discard(uint64_t seq, storage::Db db, const MessagePtr& message, std::string_view reason,
                   WriteBatch& batch);
  bool would_overflow(uint64_t body_bytes) const;
  void drop_head_over_limit(WriteBatch& batch);
  void expire_unless_taken_now(uint64_t seq, WriteBatch& batch);
  uint64_t expiry_for(const storage::MessageData& m, uint64_t now) const;
  storage::Db db_for(const storage::MessageData& m) const {
    return durable && m.persistent() ? storage::Db::messages : storage::Db::transient;
  }
  // The dbs a stream read must look in.
  bool may_hold(storage::Db db) const {
    return db == storage::Db::messages ? durable : (!durable || has_transient_);
  }
  // Deduplication: the message's key digest, if it has one.
  std::optional<std::string> dedup_digest(const storage::MessageData& m) const;
  DedupWindow& dedup_window(uint64_t now);
  // A record rewritten by `commit`: reads see the new one before that commit lands.
  void note_rewrite(uint64_t seq, const MessagePtr& m, uint64_t commit);

  Engine& engine_;
  QueuePositions positions_;
  // Rewritten records (delivery counts) whose commit is in flight: seq -> (message, commit).
  std::map<uint64_t, std::pair<MessagePtr, uint64_t>> rewritten_;
  std::deque<TailEntry> tail_;  // uncommitted messages, seqs [tail_base_, next_seq)
  uint64_t tail_base_ = 1;
  uint64_t unacked_ = 0;
  uint64_t redelivered_below_ = 0;  // from the store: possibly delivered before a restart
  uint64_t mark_requested_ = 0;     // the delivered mark last sent to the writer
  bool has_transient_ = false;      // anything in the transient db since open
  bool dispatch_scheduled_ = false;
  size_t round_robin_ = 0;
  uint64_t unused_deadline_ = 0;  // x-expires
  uint64_t expiring_now_ = 0;     // the TTL-0 message being offered to consumers
  uint64_t duplicates_ = 0;
  std::unique_ptr<DedupWindow> dedup_;  // loaded on first use
};

}  // namespace warren::core
