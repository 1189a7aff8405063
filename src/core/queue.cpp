#include "core/queue.h"

#include "core/channel.h"
#include "core/engine.h"
#include "storage/keys.h"

namespace warren::core {

using storage::Db;
using storage::Op;

namespace {
// The delivered mark is persisted this far ahead of the read position, so deliveries run
// ahead of their own mark's commit only after an unusual burst. After a crash, at most this
// many never-delivered messages per queue come back flagged redelivered (which AMQP
// allows: the flag means "may have been delivered").
constexpr uint64_t kMarkSlack = 4096;
}  // namespace

Queue::Queue(Engine& engine, uint64_t id, std::string vhost, std::string name)
    : id(id), vhost(std::move(vhost)), name(std::move(name)), engine_(engine) {}

void Queue::recover(uint64_t first, uint64_t next, uint64_t count, uint64_t delivered_mark) {
  redelivered_below_ = delivered_mark;
  stream_seq_ = first;
  // Sequence numbers only grow, so new messages never fall under an old delivered mark.
  next_seq_ = std::max({next, delivered_mark, first, uint64_t{1}});
  tail_base_ = next_seq_;
  ready_ = count;
}

uint64_t Queue::delivered_mark_for_open() {
  mark_requested_ = std::max(redelivered_below_, stream_seq_) + kMarkSlack;
  return mark_requested_;
}

uint64_t Queue::delivered_mark_for_close() const {
  return std::max(redelivered_below_, stream_seq_);
}

uint64_t Queue::enqueue(MessagePtr message) {
  bool keep = durable && message->persistent();
  Db db = keep ? Db::messages : Db::transient;
  has_transient_ |= !keep;
  uint64_t seq = next_seq_++;
  uint64_t batch = engine_.writer().submit(Op::put_message(db, id, seq, message));
  if (tail_.empty()) {
    tail_base_ = seq;
    engine_.track_inflight(shared_from_this());
  }
  tail_.push_back({std::move(message), batch, db});
  ++ready_;
  schedule_dispatch();
  return keep ? batch : 0;
}

MessagePtr Queue::load(uint64_t seq, Db db) {
  if (seq >= tail_base_ && seq < next_seq_) return tail_[seq - tail_base_].message;
  storage::ReadView view(engine_.store());
  auto key = storage::message_key(id, seq);
  auto bytes = view.get(db, std::string_view(key.data(), key.size()));
  if (!bytes) return nullptr;
  auto decoded = storage::decode_message(*bytes);
  if (!decoded) return nullptr;
  return std::make_shared<const storage::MessageData>(std::move(*decoded));
}

std::optional<Taken> Queue::take_stored() {
  storage::ReadView view(engine_.store());
  auto from = storage::message_key(id, stream_seq_);
  auto to = storage::message_key(id, tail_base_);
  std::string_view from_v(from.data(), from.size()), to_v(to.data(), to.size());
  std::optional<storage::ReadView::Entry> best;
  Db best_db = Db::messages;
  for (Db db : {Db::messages, Db::transient}) {
    if (db == Db::messages ? !durable : (durable && !has_transient_)) continue;
    auto e = view.seek(db, from_v, to_v);
    if (e && (!best || e->first < best->first)) {
      best = e;
      best_db = db;
    }
  }
  if (!best) {
    stream_seq_ = tail_base_;
    return std::nullopt;
  }
  uint64_t seq = storage::parse_message_key(best->first).seq;
  stream_seq_ = seq + 1;
  auto decoded = storage::decode_message(best->second);
  if (!decoded) return Taken{seq, best_db, false, nullptr};  // unreadable: skipped by caller
  return Taken{seq, best_db, seq < redelivered_below_,
               std::make_shared<const storage::MessageData>(std::move(*decoded))};
}

void Queue::note_delivered(uint64_t seq) {
  if (!durable || seq + kMarkSlack / 2 < mark_requested_) return;
  mark_requested_ = seq + kMarkSlack;
  engine_.writer().submit(Op::set_delivered_mark(id, mark_requested_));
}

std::optional<Taken> Queue::take_next() {
  while (!returned_.empty()) {
    auto [seq, db] = *returned_.begin();
    returned_.erase(returned_.begin());
    --ready_;
    if (auto m = load(seq, db)) return Taken{seq, db, true, std::move(m)};
    // Its batch failed: it was never stored.
  }
  while (ready_ > 0 && stream_seq_ < next_seq_) {
    if (stream_seq_ >= tail_base_) {
      uint64_t seq = stream_seq_++;
      const TailEntry& e = tail_[seq - tail_base_];
      --ready_;
      note_delivered(seq);
      return Taken{seq, e.db, seq < redelivered_below_, e.message};
    }
    auto taken = take_stored();
    if (!taken) continue;  // nothing stored below the tail: read on in the tail
    --ready_;
    note_delivered(taken->seq);
    if (taken->message) return taken;
    // An undecodable record is dropped rather than wedging the queue.
    engine_.writer().submit(Op::del_message_range(taken->db, id, taken->seq, taken->seq + 1));
  }
  return std::nullopt;
}

void Queue::requeue(uint64_t seq, Db db) {
  --unacked_;
  if (deleted) return;
  returned_.emplace(seq, db);
  ++ready_;
  schedule_dispatch();
}

void Queue::remove(uint64_t seq, Db db, uint64_t body_bytes) {
  --unacked_;
  if (deleted) return;
  engine_.writer().submit(Op::del_message(db, id, seq, body_bytes));
  engine_.note_space_freed();
}

uint32_t Queue::purge() {
  auto purged = uint32_t(ready_);
  std::vector<Op> ops;
  for (auto [seq, db] : returned_) ops.push_back(Op::del_message_range(db, id, seq, seq + 1));
  for (Db db : {Db::messages, Db::transient})
    if (db == Db::messages ? durable : (!durable || has_transient_))
      ops.push_back(Op::del_message_range(db, id, stream_seq_, next_seq_));
  engine_.writer().submit(ops);
  returned_.clear();
  stream_seq_ = next_seq_;
  ready_ = 0;
  return purged;
}

void Queue::drop_storage() {
  deleted = true;
  engine_.writer().submit(Op::drop_queue(id));
  returned_.clear();
  ready_ = 0;
}

void Queue::on_batch_done(uint64_t batch, bool ok) {
  while (!tail_.empty() && tail_.front().batch <= batch) {
    uint64_t seq = tail_base_;
    if (!ok && tail_.front().batch == batch) {
      // Never stored. If it was still waiting it is no longer there to wait; if it is out
      // with a consumer, the ack will find nothing to delete.
      if (seq >= stream_seq_)
        --ready_;
      else if (returned_.erase(seq))
        --ready_;
    }
    tail_.pop_front();
    ++tail_base_;
  }
}

void Queue::schedule_dispatch() {
  if (dispatch_scheduled_ || consumers.empty() || ready_ == 0 || deleted) return;
  dispatch_scheduled_ = true;
  engine_.post([self = shared_from_this()] { self->dispatch(); });
}

void Queue::dispatch() {
  dispatch_scheduled_ = false;
  while (ready_ > 0 && !deleted && !consumers.empty()) {
    size_t n = consumers.size();
    std::shared_ptr<Consumer> chosen;
    for (size_t i = 0; i < n; ++i) {
      const auto& c = consumers[(round_robin_ + i) % n];
      if (c->channel->can_deliver(*c)) {
        chosen = c;
        round_robin_ = (round_robin_ + i + 1) % n;
        break;
      }
    }
    if (!chosen) return;
    auto taken = take_next();
    if (!taken) return;
    chosen->channel->deliver(chosen, *this, std::move(*taken));
  }
}

}  // namespace warren::core
