#include "core/queue.h"

#include <chrono>

#include "core/channel.h"
#include "core/engine.h"
#include "storage/keys.h"
#include "wire/field_codec.h"
#include "wire/properties_codec.h"

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

uint64_t now_ms() {
  return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count());
}

Queue::Queue(Engine& engine, uint64_t id, std::string vhost, std::string name)
    : id(id), vhost(std::move(vhost)), name(std::move(name)), engine_(engine) {}

void Queue::recover(uint64_t first, uint64_t next, uint64_t count, uint64_t bytes,
                    uint64_t delivered_mark) {
  redelivered_below_ = delivered_mark;
  stream_seq_ = first;
  // Sequence numbers only grow, so new messages never fall under an old delivered mark.
  next_seq_ = std::max({next, delivered_mark, first, uint64_t{1}});
  tail_base_ = next_seq_;
  ready_ = count;
  ready_bytes_ = bytes;
}

void Queue::recover_delayed(uint64_t seq, Db db, uint64_t body_bytes) {
  if (!delayed_.emplace(seq, DelayedEntry{db, body_bytes}).second) return;
  if (ready_ > 0) --ready_;
  ready_bytes_ -= std::min(ready_bytes_, body_bytes);
}

uint64_t Queue::delivered_mark_for_open() {
  mark_requested_ = std::max(redelivered_below_, stream_seq_) + kMarkSlack;
  return mark_requested_;
}

uint64_t Queue::delivered_mark_for_close() const {
  return std::max(redelivered_below_, stream_seq_);
}

// ---- publishing -----------------------------------------------------------------------

uint64_t Queue::expiry_for(const storage::MessageData& m, uint64_t now) const {
  uint64_t at = m.expires_at;  // from the expiration property, set at publish
  if (settings.message_ttl) {
    uint64_t by_queue = now + *settings.message_ttl;
    at = at ? std::min(at, by_queue) : by_queue;
  }
  return at;
}

std::optional<std::string> Queue::dedup_digest(const storage::MessageData& m) const {
  auto p = wire::decode_properties(m.properties);
  if (!p) return std::nullopt;
  // The header named by x-deduplication-header; else the plugin's own header; else message_id.
  const std::string& header =
      settings.dedup->header.empty() ? std::string("x-deduplication-header") : settings.dedup->header;
  if (p->headers)
    if (const FieldValue* v = p->headers->find(header)) {
      if (const auto* s = v->as<std::string>()) return storage::digest128(*s);
      FieldTable one;
      one.set("k", *v);
      return storage::digest128(wire::encode_table(one));  // other types by their typed encoding
    }
  if (settings.dedup->header.empty() && p->message_id) return storage::digest128(*p->message_id);
  return std::nullopt;
}

DedupWindow& Queue::dedup_window(uint64_t now) {
  if (!dedup_) {
    dedup_ = std::make_unique<DedupWindow>(*settings.dedup);
    storage::ReadView view(engine_.store());
    dedup_->load(view, id, now);
  }
  return *dedup_;
}

bool Queue::would_overflow(uint64_t body_bytes) const {
  return (settings.max_length && ready_ + 1 > *settings.max_length) ||
         (settings.max_length_bytes && ready_bytes_ + body_bytes > *settings.max_length_bytes);
}

Queue::Enqueued Queue::enqueue(MessagePtr message) {
  // The clock only for what needs it: plain publishes are the hot path.
  const bool timed = settings.dedup || settings.message_ttl || message->expires_at;
  const uint64_t now = timed ? now_ms() : 0;
  std::optional<std::string> digest;
  if (settings.dedup && (digest = dedup_digest(*message))) {
    if (auto batch = dedup_window(now).find(DedupWindow::from_bytes(*digest), now)) {
      // Already stored: the truthful answer to the publisher is an ack, once that is durable.
      ++duplicates_;
      return {*batch, false};
    }
  }
  if (settings.overflow != Overflow::drop_head && would_overflow(message->body.size())) {
    if (settings.overflow == Overflow::reject_publish_dlx && dead_letter)
      engine_.dead_letter(*this, *message, "maxlen");
    return {0, true};
  }
  if (uint64_t at = expiry_for(*message, now); at != message->expires_at) {
    auto copy = std::make_shared<storage::MessageData>(*message);
    copy->expires_at = at;
    message = std::move(copy);
  }
  bool keep = durable && message->persistent();
  Db db = keep ? Db::messages : Db::transient;
  has_transient_ |= !keep;
  uint64_t seq = next_seq_++;
  uint64_t batch = 0;
  if (digest) {
    // The window entry commits with its message, or neither does. It is stored only with a
    // message that outlives a restart: after one, a lost message's key must not refuse its
    // retry.
    storage::Writer::SameBatch together(engine_.writer());
    batch = engine_.writer().submit(Op::put_message(db, id, seq, message));
    uint64_t order = dedup_->insert(DedupWindow::from_bytes(*digest), now, batch);
    if (keep)
      engine_.writer().submit(Op::dedup_insert(id, *digest, order, now,
                                               settings.dedup->cache_size,
                                               settings.dedup->cache_ttl_ms));
  } else {
    batch = engine_.writer().submit(Op::put_message(db, id, seq, message));
  }
  if (tail_.empty()) {
    tail_base_ = seq;
    engine_.track_inflight(shared_from_this());
  }
  const uint64_t expires_at = message->expires_at;
  if (expires_at) engine_.wake_at(expires_at);
  tail_.push_back({std::move(message), batch, db});
  ++ready_;
  ready_bytes_ += tail_.back().message->body.size();
  drop_head_over_limit();
  if (expires_at && expires_at <= now)
    expire_unless_taken_now(seq);
  else
    schedule_dispatch();
  return {keep ? batch : 0, false};
}

// A TTL of 0: only a consumer that can take the message right now may have it.
void Queue::expire_unless_taken_now(uint64_t seq) {
  expiring_now_ = seq;  // a consumer that can take it now gets it, however the clock ticks
  dispatch();
  expiring_now_ = 0;
  if (seq < stream_seq_ || seq < tail_base_ || skip_in_stream(seq)) return;  // taken or gone
  const TailEntry& e = tail_[seq - tail_base_];
  --ready_;
  ready_bytes_ -= std::min(ready_bytes_, uint64_t(e.message->body.size()));
  if (seq + 1 == next_seq_ && seq == stream_seq_) {
    ++stream_seq_;
  } else {
    skipped_[seq] = UINT64_MAX;  // until the batch deleting it is known
  }
  MessagePtr m = e.message;
  uint64_t deleting = discard(seq, e.db, m, "expired");
  if (auto it = skipped_.find(seq); it != skipped_.end()) it->second = deleting;
}

void Queue::drop_head_over_limit() {
  if (settings.overflow != Overflow::drop_head) return;
  while ((settings.max_length && ready_ > *settings.max_length) ||
         (settings.max_length_bytes && ready_bytes_ > *settings.max_length_bytes)) {
    auto head = take_head();
    if (!head) break;
    discard(head->seq, head->db, head->message, "maxlen");
  }
}

// ---- reading --------------------------------------------------------------------------

MessagePtr Queue::load(uint64_t seq, Db db) {
  if (seq >= tail_base_ && seq < next_seq_) return tail_[seq - tail_base_].message;
  if (auto it = rewritten_.find(seq); it != rewritten_.end()) return it->second.first;
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
  for (;;) {
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
    if (skip_in_stream(seq)) continue;  // not ready: waiting for a retry, or being removed
    auto decoded = storage::decode_message(best->second);
    if (!decoded) return Taken{seq, best_db, false, nullptr};  // unreadable: skipped by caller
    return Taken{seq, best_db, seq < redelivered_below_,
                 std::make_shared<const storage::MessageData>(std::move(*decoded))};
  }
}

void Queue::note_delivered(uint64_t seq) {
  if (!durable || seq + kMarkSlack / 2 < mark_requested_) return;
  mark_requested_ = seq + kMarkSlack;
  engine_.writer().submit(Op::set_delivered_mark(id, mark_requested_));
}

// The first ready message, whatever its state; ready_ and ready_bytes_ count it out.
std::optional<Taken> Queue::take_head() {
  while (!returned_.empty()) {
    auto [seq, db] = *returned_.begin();
    returned_.erase(returned_.begin());
    --ready_;
    if (auto m = load(seq, db)) {
      ready_bytes_ -= std::min(ready_bytes_, uint64_t(m->body.size()));
      return Taken{seq, db, true, std::move(m)};
    }
    // Its batch failed: it was never stored.
  }
  while (ready_ > 0 && stream_seq_ < next_seq_) {
    std::optional<Taken> taken;
    if (stream_seq_ >= tail_base_) {
      uint64_t seq = stream_seq_++;
      if (skip_in_stream(seq)) continue;
      const TailEntry& e = tail_[seq - tail_base_];
      taken = Taken{seq, e.db, seq < redelivered_below_, e.message};
    } else if (!(taken = take_stored())) {
      continue;  // nothing stored below the tail: read on in the tail
    }
    --ready_;
    note_delivered(taken->seq);
    if (taken->message) {
      ready_bytes_ -= std::min(ready_bytes_, uint64_t(taken->message->body.size()));
      return taken;
    }
    // An undecodable record is dropped rather than wedging the queue.
    engine_.writer().submit(Op::del_message_range(taken->db, id, taken->seq, taken->seq + 1));
  }
  return std::nullopt;
}

std::optional<Taken> Queue::take_next() {
  uint64_t now = 0;
  while (auto t = take_head()) {
    uint64_t at = t->message->expires_at;
    if (at && t->seq != expiring_now_ && at < (now ? now : (now = now_ms()))) {
      discard(t->seq, t->db, t->message, "expired");
      continue;
    }
    return t;
  }
  return std::nullopt;
}

// ---- settling -------------------------------------------------------------------------

uint64_t Queue::discard(uint64_t seq, Db db, const MessagePtr& message, std::string_view reason) {
  // The copy and the removal of the original commit together: after any crash the message
  // is in exactly one of the two queues.
  storage::Writer::SameBatch together(engine_.writer());
  uint64_t batch =
      engine_.writer().submit(Op::del_message(db, id, seq));
  engine_.note_space_freed();
  if (message && dead_letter) engine_.dead_letter(*this, *message, reason);
  return batch;
}

void Queue::acked(const Delivered& d) {
  --unacked_;
  if (deleted) return;
  engine_.writer().submit(Op::del_message(d.db, id, d.seq));
  engine_.note_space_freed();
}

void Queue::rejected(const Delivered& d) {
  --unacked_;
  if (deleted) return;
  discard(d.seq, d.db, dead_letter ? load(d.seq, d.db) : nullptr, "rejected");
}

void Queue::make_ready(uint64_t seq, Db db, uint64_t body_bytes) {
  // Below the read position it must be remembered; at or above it the stream finds it.
  if (seq < stream_seq_) returned_.emplace(seq, db);
  ++ready_;
  ready_bytes_ += body_bytes;
}

void Queue::note_rewrite(uint64_t seq, const MessagePtr& m, uint64_t batch) {
  // Both: the tail entry may leave when its own, earlier batch commits.
  if (seq >= tail_base_ && seq < next_seq_) tail_[seq - tail_base_].message = m;
  rewritten_[seq] = {m, batch};
  engine_.track_inflight(shared_from_this());
}

void Queue::returned(const Delivered& d, bool failed) {
  --unacked_;
  if (deleted) return;
  const uint64_t now = now_ms();
  if (d.expires_at && d.expires_at < now) {
    discard(d.seq, d.db, dead_letter ? load(d.seq, d.db) : nullptr, "expired");
    return;
  }
  if (settings.counts_deliveries()) {
    MessagePtr original = load(d.seq, d.db);
    if (!original) return;  // never stored (its batch failed)
    auto counted = std::make_shared<storage::MessageData>(*original);
    ++counted->delivery_count;
    counted->ready_at = 0;
    if (settings.delivery_limit && counted->delivery_count > *settings.delivery_limit) {
      discard(d.seq, d.db, original, "delivery_limit");
      return;
    }
    if (failed && settings.requeue_delay)
      counted->ready_at = now + settings.requeue_delay->delay_for(counted->delivery_count);
    MessagePtr updated = counted;
    note_rewrite(d.seq, updated, engine_.writer().submit(Op::replace_message(d.db, id, d.seq, updated)));
    if (updated->ready_at) {
      delayed_.emplace(d.seq, DelayedEntry{d.db, d.body_bytes});
      engine_.wake_at(updated->ready_at);
      return;
    }
  }
  make_ready(d.seq, d.db, d.body_bytes);
  drop_head_over_limit();
  schedule_dispatch();
}

uint32_t Queue::purge() {
  auto purged = uint32_t(ready_);
  std::vector<Op> ops;
  for (auto [seq, db] : returned_) ops.push_back(Op::del_message_range(db, id, seq, seq + 1));
  // Delayed messages are not ready, so they stay, as unacknowledged ones do; the range
  // below must step around them.
  uint64_t from = stream_seq_;
  auto del_stream = [&](uint64_t to) {
    for (Db db : {Db::messages, Db::transient})
      if (from < to && (db == Db::messages ? durable : (!durable || has_transient_)))
        ops.push_back(Op::del_message_range(db, id, from, to));
  };
  for (auto it = delayed_.lower_bound(stream_seq_); it != delayed_.end(); ++it) {
    del_stream(it->first);
    from = it->first + 1;
  }
  del_stream(next_seq_);
  engine_.writer().submit(ops);
  returned_.clear();
  stream_seq_ = next_seq_;
  ready_ = 0;
  ready_bytes_ = 0;
  return purged;
}

void Queue::for_each_ready(uint64_t max, const std::function<bool(const MessagePtr&)>& fn) {
  uint64_t seen = 0;
  auto visit = [&](const MessagePtr& m) { return seen++ < max && fn(m); };
  for (auto [seq, db] : returned_)
    if (auto m = load(seq, db); m && !visit(m)) return;
  // The stored stream, a bounded chunk at a time: a queue may be far larger than memory.
  constexpr size_t kChunk = 1000;
  const uint64_t end = next_seq_;  // what fn adds to this queue is not visited
  for (uint64_t from = stream_seq_; from < tail_base_;) {
    std::vector<std::pair<uint64_t, MessagePtr>> chunk;
    uint64_t complete_below = tail_base_;  // every entry below this is in the chunk
    {
      storage::ReadView view(engine_.store());
      auto lo = storage::message_key(id, from), hi = storage::message_key(id, tail_base_);
      for (Db db : {Db::messages, Db::transient}) {
        if (db == Db::messages ? !durable : (durable && !has_transient_)) continue;
        size_t taken = 0;
        view.scan(db, {lo.data(), lo.size()}, {hi.data(), hi.size()},
                  [&](std::string_view key, std::string_view value) {
                    uint64_t seq = storage::parse_message_key(key).seq;
                    if (++taken > kChunk) {
                      complete_below = std::min(complete_below, seq);
                      return false;
                    }
                    if (auto m = storage::decode_message(value); m && !skip_in_stream(seq))
                      chunk.emplace_back(seq, std::make_shared<const storage::MessageData>(std::move(*m)));
                    return true;
                  });
      }
    }
    std::sort(chunk.begin(), chunk.end(), [](auto& a, auto& b) { return a.first < b.first; });
    for (auto& [seq, m] : chunk)
      if (seq < complete_below && !visit(m)) return;
    from = complete_below;
  }
  for (uint64_t seq = std::max(stream_seq_, tail_base_); seq < end && seq - tail_base_ < tail_.size(); ++seq)
    if (!visit(tail_[seq - tail_base_].message)) return;
}

void Queue::remove_taken(const Taken& t) {
  engine_.writer().submit(Op::del_message(t.db, id, t.seq));
  engine_.note_space_freed();
}

void Queue::put_back(const Taken& t) {
  if (!t.redelivered && t.seq + 1 == stream_seq_) {
    stream_seq_ = t.seq;  // unread again, not flagged redelivered
    ++ready_;
    ready_bytes_ += t.message->body.size();
  } else {
    make_ready(t.seq, t.db, t.message->body.size());
  }
  schedule_dispatch();
}

void Queue::drop_storage() {
  deleted = true;
  engine_.writer().submit(Op::drop_queue(id));
  returned_.clear();
  delayed_.clear();
  ready_ = 0;
  ready_bytes_ = 0;
}

void Queue::on_batch_done(uint64_t batch, bool ok) {
  while (!tail_.empty() && tail_.front().batch <= batch) {
    uint64_t seq = tail_base_;
    if (!ok && tail_.front().batch == batch) {
      // Never stored. If it was still waiting it is no longer there to wait; if it is out
      // with a consumer, the ack will find nothing to delete.
      if (seq >= stream_seq_ || returned_.erase(seq)) {
        --ready_;
        ready_bytes_ -= std::min(ready_bytes_, uint64_t(tail_.front().message->body.size()));
      }
    }
    tail_.pop_front();
    ++tail_base_;
  }
  std::erase_if(skipped_, [&](const auto& entry) { return entry.second <= batch; });
  std::erase_if(rewritten_, [&](const auto& entry) { return entry.second.second <= batch; });
  if (dedup_) dedup_->batch_done(batch, ok);
}

// ---- timers ---------------------------------------------------------------------------

bool Queue::is_ready(uint64_t seq) const {
  if (returned_.count(seq)) return true;
  return seq >= stream_seq_ && seq < tail_base_ && !skip_in_stream(seq);
}

void Queue::expiry_due(uint64_t seq, Db db, uint64_t now, std::string_view key) {
  auto delayed = delayed_.find(seq);
  bool waiting = delayed != delayed_.end();
  if (deleted || !(waiting || is_ready(seq))) {
    // Out with a consumer (its return checks the expiry) or gone: the entry has done its job.
    engine_.writer().submit(Op::del(Db::schedule, std::string(key)));
    return;
  }
  MessagePtr m = load(seq, db);
  if (!m || !m->expires_at || m->expires_at > now) {
    engine_.writer().submit(Op::del(Db::schedule, std::string(key)));
    return;
  }
  bool skip = false;
  if (waiting) {
    delayed_.erase(delayed);
  } else {
    --ready_;
    ready_bytes_ -= std::min(ready_bytes_, uint64_t(m->body.size()));
    if (!returned_.erase(seq)) {
      // Still in the stream: step over it until its deletion commits.
      if (seq == stream_seq_)
        ++stream_seq_;
      else
        skip = true;
    }
  }
  if (skip) skipped_[seq] = UINT64_MAX;  // before dead-lettering, which may read this queue
  uint64_t batch = discard(seq, db, m, "expired");
  if (skip) {
    skipped_[seq] = batch;
    engine_.track_inflight(shared_from_this());
  }
}

void Queue::retry_due(uint64_t seq, Db db, std::string_view key) {
  engine_.writer().submit(Op::del(Db::schedule, std::string(key)));
  auto it = delayed_.find(seq);
  if (deleted || it == delayed_.end()) return;
  uint64_t bytes = it->second.body_bytes;
  delayed_.erase(it);
  make_ready(seq, db, bytes);
  drop_head_over_limit();
  schedule_dispatch();
}

void Queue::touch() {
  if (!settings.expires) return;
  unused_deadline_ = now_ms() + *settings.expires;
  engine_.wake_at(unused_deadline_);
}

bool Queue::unused_expired(uint64_t now) const {
  return settings.expires && !deleted && consumers.empty() && now >= unused_deadline_;
}

// ---- consumers ------------------------------------------------------------------------

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
