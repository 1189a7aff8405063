// A queue. Ready messages live in the store, not on the heap (invariant D4): in memory a
// queue keeps only positions (core/queue_positions.h) plus the few messages whose commit is
// still in flight. Everything that writes takes the WriteBatch its caller commits.
//
// A priority queue (x-max-priority) is one lane per priority: each lane has its own
// positions, tail and store id (the queue's id with the lane in its top byte), so each is
// FIFO and costs no memory per message. Outside the queue a message's number carries its
// lane in the same top byte (queue_seq); a plain queue has lane 0 only, whose numbers and
// store id are the queue's own.
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
  int64_t priority = 0;  // x-priority: higher ones are offered messages first
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

  // --- lanes ------------------------------------------------------------------------
  // One lane per priority 0..max_priority; called once, before the queue holds anything.
  void use_priorities(uint8_t max_priority);
  static constexpr int kLaneShift = 56;
  static constexpr uint64_t kSeqMask = (uint64_t{1} << kLaneShift) - 1;
  // Store ids (message keys, stats, schedule entries) and the queue numbers they stand for.
  static uint64_t queue_id_of(uint64_t store_id) { return store_id & kSeqMask; }
  static uint64_t queue_seq(uint64_t store_id, uint64_t seq) { return (store_id & ~kSeqMask) | seq; }
  bool has_lane_of(uint64_t store_id) const { return (store_id >> kLaneShift) < lanes_.size(); }

  // --- recovery ---------------------------------------------------------------------
  // Positions from each lane's counters and first and last keys: messages [first, next)
  // with `count` of them present, and everything below its delivered mark possibly
  // delivered before.
  void recover(storage::ReadView& view);
  // Recovery: a message that waits for its retry time (seq as queue_seq gives it).
  void recover_delayed(uint64_t seq, storage::Db db, uint64_t body_bytes);
  // The marks to persist at open (also for a queue declared just now) and at a clean close.
  void add_delivered_marks_for_open(WriteBatch& batch);
  void add_delivered_marks_for_close(WriteBatch& batch) const;

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
  bool has_inflight_commits() const;

  // Timers from the schedule database (Engine::run_schedule), `key` being the entry's key.
  void expiry_due(uint64_t seq, storage::Db db, uint64_t now, std::string_view key, WriteBatch& batch);
  void retry_due(uint64_t seq, std::string_view key, WriteBatch& batch);

  // x-expires: the queue was used (declared, consumed from, got from).
  void touch();
  bool unused_expired(uint64_t now) const;
  uint64_t unused_deadline() const { return unused_deadline_; }

  uint64_t ready() const;
  uint64_t ready_bytes() const;
  uint64_t unacked() const { return unacked_; }
  uint64_t delayed() const;
  uint64_t duplicates() const { return duplicates_; }
  size_t lanes() const { return lanes_.size(); }
  // Counts since start, for the management API's message_stats.
  struct MessageStats {
    uint64_t publish = 0;      // messages enqueued
    uint64_t deliver_get = 0;  // deliveries and gets
    uint64_t ack = 0;          // acknowledged by a consumer
    uint64_t redeliver = 0;    // deliveries flagged redelivered
  } stats;

  // --- consumers --------------------------------------------------------------------
  // In registration order. With x-single-active-consumer only the first one receives.
  std::vector<std::shared_ptr<Consumer>> consumers;
  void add_consumer(std::shared_ptr<Consumer> c);
  void remove_consumer(const std::shared_ptr<Consumer>& c);
  // The consumer that receives, with x-single-active-consumer (null: none or not SAC).
  const Consumer* active_consumer() const;
  void schedule_dispatch();
  void add_unacked() { ++unacked_; }

 private:
  struct TailEntry {
    MessagePtr message;
    uint64_t commit;
    storage::Db db;
  };
  struct Lane {
    explicit Lane(uint64_t id) : store_id(id) {}
    uint64_t store_id;
    QueuePositions positions;
    std::deque<TailEntry> tail;  // uncommitted messages, seqs [tail_base, positions.next_seq())
    uint64_t tail_base = 1;
    uint64_t redelivered_below = 0;  // from the store: possibly delivered before a restart
    uint64_t mark_requested = 0;     // the delivered mark last sent to the writer
    bool in_tail(uint64_t seq) const { return seq >= tail_base && seq < positions.next_seq(); }
    uint64_t delivered_mark_for_open();
    uint64_t delivered_mark_for_close() const;
  };
  Lane& lane_of(uint64_t qseq) { return lanes_[qseq >> kLaneShift]; }
  static uint64_t local(uint64_t qseq) { return qseq & kSeqMask; }
  uint64_t qseq(const Lane& lane, uint64_t seq) const { return queue_seq(lane.store_id, seq); }
  size_t lane_for(const storage::MessageData& m) const;
  void dispatch(WriteBatch& batch);
  std::shared_ptr<Consumer> next_consumer();
  MessagePtr load(uint64_t qseq, storage::Db db);
  std::optional<Taken> take_head(WriteBatch& batch);
  std::optional<Taken> take_head(Lane& lane, WriteBatch& batch);
  std::optional<Taken> take_stored(Lane& lane);
  bool for_each_ready(Lane& lane, const std::function<bool(const MessagePtr&)>& visit);
  void note_delivered(Lane& lane, uint64_t seq, WriteBatch& batch);
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
  std::vector<Lane> lanes_;  // by priority, lowest first
  // Rewritten records (delivery counts) whose commit is in flight: qseq -> (message, commit).
  std::map<uint64_t, std::pair<MessagePtr, uint64_t>> rewritten_;
  uint64_t unacked_ = 0;
  bool has_transient_ = false;      // anything in the transient db since open
  bool dispatch_scheduled_ = false;
  size_t round_robin_ = 0;
  std::weak_ptr<Consumer> departing_;  // a cancelled active consumer still holding messages
  int64_t top_consumer_priority_ = 0;  // the highest x-priority among the consumers
  uint64_t unused_deadline_ = 0;  // x-expires
  uint64_t expiring_now_ = UINT64_MAX;  // the TTL-0 message being offered to consumers
  uint64_t duplicates_ = 0;
  std::unique_ptr<DedupWindow> dedup_;  // loaded on first use
};

}  // namespace warren::core
