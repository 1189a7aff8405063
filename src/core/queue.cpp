#include "core/queue.h"

#include <algorithm>
#include <chrono>

#include "common/log.h"
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
  // Sequence numbers only grow, so new messages never fall under an old delivered mark.
  next = std::max({next, delivered_mark, first, uint64_t{1}});
  positions_.recover(first, next, count, bytes);
  tail_base_ = next;
}

void Queue::recover_delayed(uint64_t seq, Db db, uint64_t body_bytes) {
  positions_.recover_delayed(seq, {db, body_bytes});
}

uint64_t Queue::delivered_mark_for_open() {
  mark_requested_ = std::max(redelivered_below_, positions_.read_position()) + kMarkSlack;
  return mark_requested_;
}

uint64_t Queue::delivered_mark_for_close() const {
  return std::max(redelivered_below_, positions_.read_position());
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
  return (settings.max_length && ready() + 1 > *settings.max_length) ||
         (settings.max_length_bytes && positions_.ready_bytes() + body_bytes > *settings.max_length_bytes);
}

Queue::Enqueued Queue::enqueue(MessagePtr message, WriteBatch& batch) {
  // The clock only for what needs it: plain publishes are the hot path.
  const bool timed = settings.dedup || settings.message_ttl || message->expires_at;
  const uint64_t now = timed ? now_ms() : 0;
  std::optional<std::string> digest;
  if (settings.dedup && (digest = dedup_digest(*message))) {
    if (auto commit = dedup_window(now).find(DedupWindow::from_bytes(*digest), now)) {
      // Already stored: the truthful answer to the publisher is an ack, once that is durable.
      ++duplicates_;
      return {*commit, false};
    }
  }
  if (settings.overflow != Overflow::drop_head && would_overflow(message->body.size())) {
    if (settings.overflow == Overflow::reject_publish_dlx && dead_letter)
      engine_.dead_letter(*this, *message, "maxlen", batch);
    return {0, true};
  }
  if (uint64_t at = expiry_for(*message, now); at != message->expires_at) {
    auto copy = std::make_shared<storage::MessageData>(*message);
    copy->expires_at = at;
    message = std::move(copy);
  }
  const Db db = db_for(*message);
  has_transient_ |= db == Db::transient;
  const uint64_t seq = positions_.append(message->body.size());
  const uint64_t commit = batch.add(Op::put_message(db, id, seq, message));
  if (digest) {
    // The window entry commits with its message, or neither does. It is stored only with a
    // message that outlives a restart: after one, a lost message's key must not refuse its
    // retry.
    uint64_t order = dedup_->insert(DedupWindow::from_bytes(*digest), now, commit);
    if (db == Db::messages)
      batch.add(Op::dedup_insert(id, *digest, order, now, settings.dedup->cache_size,
                                 settings.dedup->cache_ttl_ms));
  }
  if (tail_.empty()) {
    tail_base_ = seq;
    engine_.track_inflight(shared_from_this());
  }
  const uint64_t expires_at = message->expires_at;
  if (expires_at) engine_.wake_at(expires_at);
  tail_.push_back({std::move(message), commit, db});
  drop_head_over_limit(batch);
  if (expires_at && expires_at <= now)
    expire_unless_taken_now(seq, batch);
  else
    schedule_dispatch();
  return {db == Db::messages ? commit : 0, false};
}

// A TTL of 0: only a consumer that can take the message right now may have it.
void Queue::expire_unless_taken_now(uint64_t seq, WriteBatch& batch) {
  expiring_now_ = seq;  // a consumer that can take it now gets it, however the clock ticks
  dispatch(batch);
  expiring_now_ = 0;
  if (!positions_.is_ready(seq)) return;  // taken, or dropped over a length limit
  const TailEntry& e = tail_[seq - tail_base_];  // its own commit is this batch: still here
  MessagePtr m = e.message;
  // Out of the positions before dead-lettering, which may route back into this queue.
  positions_.remove_ready(seq, m->body.size(), batch.upcoming_id());
  discard(seq, e.db, m, "expired", batch);
}

void Queue::drop_head_over_limit(WriteBatch& batch) {
  if (settings.overflow != Overflow::drop_head) return;
  while ((settings.max_length && ready() > *settings.max_length) ||
         (settings.max_length_bytes && positions_.ready_bytes() > *settings.max_length_bytes)) {
    auto head = take_head(batch);
    if (!head) break;
    discard(head->seq, head->db, head->message, "maxlen", batch);
  }
}

// ---- reading --------------------------------------------------------------------------

MessagePtr Queue::load(uint64_t seq, Db db) {
  if (seq >= tail_base_ && seq < positions_.next_seq()) return tail_[seq - tail_base_].message;
  if (auto it = rewritten_.find(seq); it != rewritten_.end()) return it->second.first;
  storage::ReadView view(engine_.store());
  auto key = storage::message_key(id, seq);
  auto bytes = view.get(db, std::string_view(key.data(), key.size()));
  if (!bytes) return nullptr;
  auto decoded = storage::decode_message(*bytes);
  if (!decoded) return nullptr;
  return std::make_shared<const storage::MessageData>(std::move(*decoded));
}

// The first stored message at or after the read position and below the tail that is not
// held out of the stream. Moves the read position past what it steps over; an exhausted
// range moves it to the tail.
std::optional<Taken> Queue::take_stored() {
  storage::ReadView view(engine_.store());
  for (;;) {
    auto from = storage::message_key(id, positions_.read_position());
    auto to = storage::message_key(id, tail_base_);
    std::string_view from_v(from.data(), from.size()), to_v(to.data(), to.size());
    std::optional<storage::ReadView::Entry> best;
    Db best_db = Db::messages;
    for (Db db : {Db::messages, Db::transient}) {
      if (!may_hold(db)) continue;
      auto e = view.seek(db, from_v, to_v);
      if (e && (!best || e->first < best->first)) {
        best = e;
        best_db = db;
      }
    }
    if (!best) {
      positions_.skip_to(tail_base_);
      return std::nullopt;
    }
    uint64_t seq = storage::parse_message_key(best->first).seq;
    if (positions_.held_in_stream(seq)) {
      positions_.skip_to(seq + 1);
      continue;
    }
    positions_.skip_to(seq);
    auto decoded = storage::decode_message(best->second);
    if (!decoded) return Taken{seq, best_db, false, nullptr};  // unreadable: the caller drops it
    return Taken{seq, best_db, seq < redelivered_below_,
                 std::make_shared<const storage::MessageData>(std::move(*decoded))};
  }
}

void Queue::note_delivered(uint64_t seq, WriteBatch& batch) {
  if (!durable || seq + kMarkSlack / 2 < mark_requested_) return;
  mark_requested_ = seq + kMarkSlack;
  batch.add(Op::set_delivered_mark(id, mark_requested_));
}

// The first ready message, whatever its state; it is no longer ready.
std::optional<Taken> Queue::take_head(WriteBatch& batch) {
  while (auto returned = positions_.pop_returned()) {
    auto [seq, held] = *returned;
    if (auto m = load(seq, held.db)) return Taken{seq, held.db, true, std::move(m), true};
    // Gone from the store under it: nothing to deliver.
  }
  while (positions_.stream_has_ready()) {
    std::optional<Taken> taken;
    uint64_t read = positions_.read_position();
    if (read >= tail_base_) {
      if (positions_.held_in_stream(read)) {
        positions_.skip_to(read + 1);
        continue;
      }
      const TailEntry& e = tail_[read - tail_base_];
      taken = Taken{read, e.db, read < redelivered_below_, e.message};
    } else if (!(taken = take_stored())) {
      continue;  // nothing stored below the tail: read on in the tail
    }
    if (!taken->message) {
      // A damaged record (its checksum or format is wrong) is never delivered; it is dropped
      // rather than wedging the queue, and the loss is reported.
      log::error("queue '{}' in vhost '{}': message {} is damaged and is dropped (warrend --check lists "
                 "every damaged record)",
                 name, vhost, taken->seq);
      positions_.take_unreadable(taken->seq);
      batch.add(Op::del_message_range(taken->db, id, taken->seq, taken->seq + 1));
      continue;
    }
    positions_.take_from_stream(taken->seq, taken->message->body.size());
    note_delivered(taken->seq, batch);
    return taken;
  }
  return std::nullopt;
}

std::optional<Taken> Queue::take_next(WriteBatch& batch) {
  uint64_t now = 0;
  while (auto t = take_head(batch)) {
    uint64_t at = t->message->expires_at;
    if (at && t->seq != expiring_now_ && at < (now ? now : (now = now_ms()))) {
      discard(t->seq, t->db, t->message, "expired", batch);
      continue;
    }
    return t;
  }
  return std::nullopt;
}

// ---- settling -------------------------------------------------------------------------

uint64_t Queue::discard(uint64_t seq, Db db, const MessagePtr& message, std::string_view reason,
                        WriteBatch& batch) {
  // The copy and the removal of the original commit together: after any crash the message
  // is in exactly one of the two queues.
  uint64_t commit = batch.add(Op::del_message(db, id, seq));
  engine_.note_space_freed();
  if (message && dead_letter) engine_.dead_letter(*this, *message, reason, batch);
  return commit;
}

void Queue::acked(const Delivered& d, WriteBatch& batch) {
  --unacked_;
  if (deleted) return;
  batch.add(Op::del_message(d.db, id, d.seq));
  engine_.note_space_freed();
}

void Queue::rejected(const Delivered& d, WriteBatch& batch) {
  --unacked_;
  if (deleted) return;
  discard(d.seq, d.db, dead_letter ? load(d.seq, d.db) : nullptr, "rejected", batch);
}

void Queue::note_rewrite(uint64_t seq, const MessagePtr& m, uint64_t commit) {
  // Both: the tail entry may leave when its own, earlier commit lands.
  if (seq >= tail_base_ && seq < positions_.next_seq()) tail_[seq - tail_base_].message = m;
  rewritten_[seq] = {m, commit};
  engine_.track_inflight(shared_from_this());
}

void Queue::returned(const Delivered& d, bool failed, WriteBatch& batch) {
  --unacked_;
  if (deleted) return;
  const uint64_t now = now_ms();
  if (d.expires_at && d.expires_at < now) {
    discard(d.seq, d.db, dead_letter ? load(d.seq, d.db) : nullptr, "expired", batch);
    return;
  }
  const QueuePositions::Held held{d.db, d.body_bytes};
  if (settings.counts_deliveries()) {
    MessagePtr original = load(d.seq, d.db);
    if (!original) return;  // never stored (its commit failed)
    auto counted = std::make_shared<storage::MessageData>(*original);
    ++counted->delivery_count;
    counted->ready_at = 0;
    if (settings.delivery_limit && counted->delivery_count > *settings.delivery_limit) {
      discard(d.seq, d.db, original, "delivery_limit", batch);
      return;
    }
    if (failed && settings.requeue_delay)
      counted->ready_at = now + settings.requeue_delay->delay_for(counted->delivery_count);
    MessagePtr updated = counted;
    note_rewrite(d.seq, updated, batch.add(Op::replace_message(d.db, id, d.seq, updated)));
    if (updated->ready_at) {
      positions_.delay(d.seq, held);
      engine_.wake_at(updated->ready_at);
      return;
    }
  }
  positions_.give_back(d.seq, held);
  drop_head_over_limit(batch);
  schedule_dispatch();
}

uint32_t Queue::purge(WriteBatch& batch) {
  QueuePositions::Purged purged = positions_.purge();
  for (const auto& [seq, held] : purged.returned)
    batch.add(Op::del_message_range(held.db, id, seq, seq + 1));
  for (auto [from, to] : purged.ranges)
    for (Db db : {Db::messages, Db::transient})
      if (may_hold(db)) batch.add(Op::del_message_range(db, id, from, to));
  return uint32_t(purged.count);
}

void Queue::for_each_ready(uint64_t max, const std::function<bool(const MessagePtr&)>& fn) {
  uint64_t seen = 0;
  auto visit = [&](const MessagePtr& m) { return seen++ < max && fn(m); };
  for (const auto& [seq, held] : positions_.returned())
    if (auto m = load(seq, held.db); m && !visit(m)) return;
  // The stored stream, a bounded chunk at a time: a queue may be far larger than memory.
  constexpr size_t kChunk = 1000;
  const uint64_t end = positions_.next_seq();  // what fn adds to this queue is not visited
  for (uint64_t from = positions_.read_position(); from < tail_base_;) {
    std::vector<std::pair<uint64_t, MessagePtr>> chunk;
    uint64_t complete_below = tail_base_;  // every entry below this is in the chunk
    {
      storage::ReadView view(engine_.store());
      auto lo = storage::message_key(id, from), hi = storage::message_key(id, tail_base_);
      for (Db db : {Db::messages, Db::transient}) {
        if (!may_hold(db)) continue;
        size_t taken = 0;
        view.scan(db, {lo.data(), lo.size()}, {hi.data(), hi.size()},
                  [&](std::string_view key, std::string_view value) {
                    uint64_t seq = storage::parse_message_key(key).seq;
                    if (++taken > kChunk) {
                      complete_below = std::min(complete_below, seq);
                      return false;
                    }
                    if (auto m = storage::decode_message(value); m && !positions_.held_in_stream(seq))
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
  for (uint64_t seq = std::max(positions_.read_position(), tail_base_);
       seq < end && seq - tail_base_ < tail_.size(); ++seq)
    if (!positions_.held_in_stream(seq) && !visit(tail_[seq - tail_base_].message)) return;
}

void Queue::remove_taken(const Taken& t, WriteBatch& batch) {
  batch.add(Op::del_message(t.db, id, t.seq));
  engine_.note_space_freed();
}

void Queue::put_back(const Taken& t) {
  positions_.unread(t.seq, {t.db, t.message->body.size()}, t.was_returned);
  schedule_dispatch();
}

void Queue::drop_storage(WriteBatch& batch) {
  deleted = true;
  batch.add(Op::drop_queue(id));
  positions_.clear();
}

void Queue::on_commits(const storage::CommitOutcomes& outcomes) {
  while (!tail_.empty() && tail_.front().commit <= outcomes.through) {
    // A message whose commit failed was never stored.
    if (outcomes.failed_commit(tail_.front().commit))
      positions_.never_stored(tail_base_, tail_.front().message->body.size());
    tail_.pop_front();
    ++tail_base_;
  }
  positions_.removed_through(outcomes.through);
  std::erase_if(rewritten_, [&](const auto& entry) { return entry.second.second <= outcomes.through; });
  if (dedup_) dedup_->on_commits(outcomes);
}

// ---- timers ---------------------------------------------------------------------------

void Queue::expiry_due(uint64_t seq, Db db, uint64_t now, std::string_view key, WriteBatch& batch) {
  const bool waiting = positions_.is_delayed(seq);
  if (deleted || !(waiting || positions_.is_ready(seq))) {
    // Out with a consumer (its return checks the expiry) or gone: the entry has done its job.
    batch.add(Op::del(Db::schedule, std::string(key)));
    return;
  }
  MessagePtr m = load(seq, db);
  if (!m || !m->expires_at || m->expires_at > now) {
    batch.add(Op::del(Db::schedule, std::string(key)));
    return;
  }
  if (waiting) {
    positions_.end_delay(seq);
  } else {
    // Out of the positions before dead-lettering, which may read this queue.
    positions_.remove_ready(seq, m->body.size(), batch.upcoming_id());
    engine_.track_inflight(shared_from_this());
  }
  discard(seq, db, m, "expired", batch);
}

void Queue::retry_due(uint64_t seq, std::string_view key, WriteBatch& batch) {
  batch.add(Op::del(Db::schedule, std::string(key)));
  auto held = positions_.end_delay(seq);
  if (deleted || !held) return;
  positions_.give_back(seq, *held);
  drop_head_over_limit(batch);
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
  if (dispatch_scheduled_ || consumers.empty() || ready() == 0 || deleted) return;
  dispatch_scheduled_ = true;
  engine_.post([self = shared_from_this()] {
    WriteBatch batch(self->engine_);
    self->dispatch(batch);
  });
}

void Queue::dispatch(WriteBatch& batch) {
  dispatch_scheduled_ = false;
  while (ready() > 0 && !deleted && !consumers.empty()) {
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
    auto taken = take_next(batch);
    if (!taken) return;
    chosen->channel->deliver(chosen, *this, std::move(*taken), batch);
  }
}

}  // namespace warren::core
