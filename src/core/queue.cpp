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
    : id(id), vhost(std::move(vhost)), name(std::move(name)), engine_(engine) {
  lanes_.emplace_back(id);
}

void Queue::use_priorities(uint8_t max_priority) {
  for (size_t lane = lanes_.size(); lane <= max_priority; ++lane)
    lanes_.emplace_back(id | uint64_t(lane) << kLaneShift);
}

size_t Queue::lane_for(const storage::MessageData& m) const {
  if (lanes_.size() == 1) return 0;
  // No priority counts as 0, one above the maximum as the maximum (as in RabbitMQ).
  return std::min<size_t>(wire::peek_priority(m.properties).value_or(0), lanes_.size() - 1);
}

uint64_t Queue::ready() const {
  uint64_t n = 0;
  for (const Lane& lane : lanes_) n += lane.positions.ready();
  return n;
}

uint64_t Queue::ready_bytes() const {
  uint64_t n = 0;
  for (const Lane& lane : lanes_) n += lane.positions.ready_bytes();
  return n;
}

uint64_t Queue::delayed() const {
  uint64_t n = 0;
  for (const Lane& lane : lanes_) n += lane.positions.delayed();
  return n;
}

bool Queue::has_inflight_commits() const {
  for (const Lane& lane : lanes_)
    if (!lane.tail.empty() || lane.positions.has_removing()) return true;
  return !rewritten_.empty() || (dedup_ && dedup_->has_pending());
}

void Queue::recover(storage::ReadView& view) {
  for (Lane& lane : lanes_) {
    storage::QueueStats stored;
    if (auto bytes = view.get(Db::queue_stats, storage::queue_id_key(lane.store_id)))
      stored = storage::decode_stats(*bytes).value_or(storage::QueueStats{});
    auto lo = storage::message_key(lane.store_id, 0), hi = storage::message_key(lane.store_id, UINT64_MAX);
    std::string_view lo_v(lo.data(), lo.size()), hi_v(hi.data(), hi.size());
    auto first_entry = view.seek(Db::messages, lo_v, hi_v);
    auto last_entry = view.last(Db::messages, lo_v, hi_v);
    uint64_t first = first_entry ? storage::parse_message_key(first_entry->first).seq : stored.delivered_mark;
    uint64_t next = last_entry ? storage::parse_message_key(last_entry->first).seq + 1 : first;
    lane.redelivered_below = stored.delivered_mark;
    // Sequence numbers only grow, so new messages never fall under an old delivered mark.
    next = std::max({next, stored.delivered_mark, first, uint64_t{1}});
    lane.positions.recover(first, next, stored.count, stored.bytes);
    lane.tail_base = next;
  }
}

void Queue::recover_delayed(uint64_t seq, Db db, uint64_t body_bytes) {
  lane_of(seq).positions.recover_delayed(local(seq), {db, body_bytes});
}

uint64_t Queue::Lane::delivered_mark_for_open() {
  mark_requested = std::max(redelivered_below, positions.read_position()) + kMarkSlack;
  return mark_requested;
}

uint64_t Queue::Lane::delivered_mark_for_close() const {
  return std::max(redelivered_below, positions.read_position());
}

void Queue::add_delivered_marks_for_open(WriteBatch& batch) {
  for (Lane& lane : lanes_) batch.add(Op::set_delivered_mark(lane.store_id, lane.delivered_mark_for_open()));
}

void Queue::add_delivered_marks_for_close(WriteBatch& batch) const {
  for (const Lane& lane : lanes_)
    batch.add(Op::set_delivered_mark(lane.store_id, lane.delivered_mark_for_close()));
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
         (settings.max_length_bytes && ready_bytes() + body_bytes > *settings.max_length_bytes);
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
  Lane& lane = lanes_[lane_for(*message)];
  const uint64_t seq = lane.positions.append(message->body.size());
  const uint64_t commit = batch.add(Op::put_message(db, lane.store_id, seq, message));
  if (digest) {
    // The window entry commits with its message, or neither does. It is stored only with a
    // message that outlives a restart: after one, a lost message's key must not refuse its
    // retry.
    uint64_t order = dedup_->insert(DedupWindow::from_bytes(*digest), now, commit);
    if (db == Db::messages)
      batch.add(Op::dedup_insert(id, *digest, order, now, settings.dedup->cache_size,
                                 settings.dedup->cache_ttl_ms));
  }
  if (lane.tail.empty()) {
    lane.tail_base = seq;
    engine_.track_inflight(shared_from_this());
  }
  ++stats.publish;
  const uint64_t expires_at = message->expires_at;
  if (expires_at) engine_.wake_at(expires_at);
  lane.tail.push_back({std::move(message), commit, db});
  drop_head_over_limit(batch);
  if (expires_at && expires_at <= now)
    expire_unless_taken_now(qseq(lane, seq), batch);
  else
    schedule_dispatch();
  return {db == Db::messages ? commit : 0, false};
}

// A TTL of 0: only a consumer that can take the message right now may have it.
void Queue::expire_unless_taken_now(uint64_t qseq, WriteBatch& batch) {
  expiring_now_ = qseq;  // a consumer that can take it now gets it, however the clock ticks
  dispatch(batch);
  expiring_now_ = UINT64_MAX;
  Lane& lane = lane_of(qseq);
  const uint64_t seq = local(qseq);
  if (!lane.positions.is_ready(seq)) return;  // taken, or dropped over a length limit
  const TailEntry& e = lane.tail[seq - lane.tail_base];  // its own commit is this batch: still here
  MessagePtr m = e.message;
  // Out of the positions before dead-lettering, which may route back into this queue.
  lane.positions.remove_ready(seq, m->body.size(), batch.upcoming_id());
  discard(qseq, e.db, m, "expired", batch);
}

void Queue::drop_head_over_limit(WriteBatch& batch) {
  if (settings.overflow != Overflow::drop_head) return;
  while ((settings.max_length && ready() > *settings.max_length) ||
         (settings.max_length_bytes && ready_bytes() > *settings.max_length_bytes)) {
    auto head = take_head(batch);
    if (!head) break;
    discard(head->seq, head->db, head->message, "maxlen", batch);
  }
}

// ---- reading --------------------------------------------------------------------------

MessagePtr Queue::load(uint64_t qseq, Db db) {
  Lane& lane = lane_of(qseq);
  const uint64_t seq = local(qseq);
  if (lane.in_tail(seq)) return lane.tail[seq - lane.tail_base].message;
  if (auto it = rewritten_.find(qseq); it != rewritten_.end()) return it->second.first;
  storage::ReadView view(engine_.store());
  auto key = storage::message_key(lane.store_id, seq);
  auto bytes = view.get(db, std::string_view(key.data(), key.size()));
  if (!bytes) return nullptr;
  auto decoded = storage::decode_message(*bytes);
  if (!decoded) return nullptr;
  return std::make_shared<const storage::MessageData>(std::move(*decoded));
}

// The first stored message at or after the read position and below the tail that is not
// held out of the stream. Moves the read position past what it steps over; an exhausted
// range moves it to the tail.
std::optional<Taken> Queue::take_stored(Lane& lane) {
  QueuePositions& positions = lane.positions;
  storage::ReadView view(engine_.store());
  for (;;) {
    auto from = storage::message_key(lane.store_id, positions.read_position());
    auto to = storage::message_key(lane.store_id, lane.tail_base);
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
      positions.skip_to(lane.tail_base);
      return std::nullopt;
    }
    uint64_t seq = storage::parse_message_key(best->first).seq;
    if (positions.held_in_stream(seq)) {
      positions.skip_to(seq + 1);
      continue;
    }
    positions.skip_to(seq);
    auto decoded = storage::decode_message(best->second);
    if (!decoded) return Taken{qseq(lane, seq), best_db, false, nullptr};  // unreadable: the caller drops it
    return Taken{qseq(lane, seq), best_db, seq < lane.redelivered_below,
                 std::make_shared<const storage::MessageData>(std::move(*decoded))};
  }
}

void Queue::note_delivered(Lane& lane, uint64_t seq, WriteBatch& batch) {
  if (!durable || seq + kMarkSlack / 2 < lane.mark_requested) return;
  lane.mark_requested = seq + kMarkSlack;
  batch.add(Op::set_delivered_mark(lane.store_id, lane.mark_requested));
}

// The first ready message, whatever its state: the highest priority's first. It is no
// longer ready.
std::optional<Taken> Queue::take_head(WriteBatch& batch) {
  for (size_t i = lanes_.size(); i-- > 0;)
    if (lanes_[i].positions.ready() > 0)
      if (auto taken = take_head(lanes_[i], batch)) return taken;
  return std::nullopt;
}

std::optional<Taken> Queue::take_head(Lane& lane, WriteBatch& batch) {
  QueuePositions& positions = lane.positions;
  while (auto returned = positions.pop_returned()) {
    auto [seq, held] = *returned;
    if (auto m = load(qseq(lane, seq), held.db)) return Taken{qseq(lane, seq), held.db, true, std::move(m), true};
    // Gone from the store under it: nothing to deliver.
  }
  while (positions.stream_has_ready()) {
    std::optional<Taken> taken;
    uint64_t read = positions.read_position();
    if (read >= lane.tail_base) {
      if (positions.held_in_stream(read)) {
        positions.skip_to(read + 1);
        continue;
      }
      const TailEntry& e = lane.tail[read - lane.tail_base];
      taken = Taken{qseq(lane, read), e.db, read < lane.redelivered_below, e.message};
    } else if (!(taken = take_stored(lane))) {
      continue;  // nothing stored below the tail: read on in the tail
    }
    if (!taken->message) {
      // A damaged record (its checksum or format is wrong) is never delivered; it is dropped
      // rather than wedging the queue, and the loss is reported.
      const uint64_t seq = local(taken->seq);
      log::error("queue '{}' in vhost '{}': message {} is damaged and is dropped (warrend --check lists "
                 "every damaged record)",
                 name, vhost, seq);
      positions.take_unreadable(seq);
      batch.add(Op::del_message_range(taken->db, lane.store_id, seq, seq + 1));
      continue;
    }
    positions.take_from_stream(local(taken->seq), taken->message->body.size());
    note_delivered(lane, local(taken->seq), batch);
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
  uint64_t commit = batch.add(Op::del_message(db, lane_of(seq).store_id, local(seq)));
  engine_.note_space_freed();
  engine_.counters.expired += reason == "expired";
  if (message && dead_letter) engine_.dead_letter(*this, *message, reason, batch);
  return commit;
}

void Queue::acked(const Delivered& d, WriteBatch& batch) {
  --unacked_;
  if (!departing_.expired()) schedule_dispatch();
  if (deleted) return;
  batch.add(Op::del_message(d.db, lane_of(d.seq).store_id, local(d.seq)));
  engine_.note_space_freed();
}

void Queue::rejected(const Delivered& d, WriteBatch& batch) {
  --unacked_;
  if (!departing_.expired()) schedule_dispatch();
  if (deleted) return;
  discard(d.seq, d.db, dead_letter ? load(d.seq, d.db) : nullptr, "rejected", batch);
}

void Queue::note_rewrite(uint64_t seq, const MessagePtr& m, uint64_t commit) {
  // Both: the tail entry may leave when its own, earlier commit lands.
  Lane& lane = lane_of(seq);
  if (lane.in_tail(local(seq))) lane.tail[local(seq) - lane.tail_base].message = m;
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
    note_rewrite(d.seq, updated,
                 batch.add(Op::replace_message(d.db, lane_of(d.seq).store_id, local(d.seq), updated)));
    if (updated->ready_at) {
      lane_of(d.seq).positions.delay(local(d.seq), held);
      engine_.wake_at(updated->ready_at);
      return;
    }
  }
  lane_of(d.seq).positions.give_back(local(d.seq), held);
  drop_head_over_limit(batch);
  schedule_dispatch();
}

uint32_t Queue::purge(WriteBatch& batch) {
  uint64_t count = 0;
  for (Lane& lane : lanes_) {
    QueuePositions::Purged purged = lane.positions.purge();
    for (const auto& [seq, held] : purged.returned)
      batch.add(Op::del_message_range(held.db, lane.store_id, seq, seq + 1));
    for (auto [from, to] : purged.ranges)
      for (Db db : {Db::messages, Db::transient})
        if (may_hold(db)) batch.add(Op::del_message_range(db, lane.store_id, from, to));
    count += purged.count;
  }
  return uint32_t(count);
}

void Queue::for_each_ready(uint64_t max, const std::function<bool(const MessagePtr&)>& fn) {
  uint64_t seen = 0;
  auto visit = [&](const MessagePtr& m) { return seen++ < max && fn(m); };
  for (size_t i = lanes_.size(); i-- > 0;)  // in delivery order: the highest priority first
    if (!for_each_ready(lanes_[i], visit)) return;
}

bool Queue::for_each_ready(Lane& lane, const std::function<bool(const MessagePtr&)>& visit) {
  const QueuePositions& positions = lane.positions;
  for (const auto& [seq, held] : positions.returned())
    if (auto m = load(qseq(lane, seq), held.db); m && !visit(m)) return false;
  // The stored stream, a bounded chunk at a time: a queue may be far larger than memory.
  constexpr size_t kChunk = 1000;
  const uint64_t end = positions.next_seq();  // what visit adds to this queue is not visited
  for (uint64_t from = positions.read_position(); from < lane.tail_base;) {
    std::vector<std::pair<uint64_t, MessagePtr>> chunk;
    uint64_t complete_below = lane.tail_base;  // every entry below this is in the chunk
    {
      storage::ReadView view(engine_.store());
      auto lo = storage::message_key(lane.store_id, from), hi = storage::message_key(lane.store_id, lane.tail_base);
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
                    if (auto m = storage::decode_message(value); m && !positions.held_in_stream(seq))
                      chunk.emplace_back(seq, std::make_shared<const storage::MessageData>(std::move(*m)));
                    return true;
                  });
      }
    }
    std::sort(chunk.begin(), chunk.end(), [](auto& a, auto& b) { return a.first < b.first; });
    for (auto& [seq, m] : chunk)
      if (seq < complete_below && !visit(m)) return false;
    from = complete_below;
  }
  for (uint64_t seq = std::max(positions.read_position(), lane.tail_base);
       seq < end && seq - lane.tail_base < lane.tail.size(); ++seq)
    if (!positions.held_in_stream(seq) && !visit(lane.tail[seq - lane.tail_base].message)) return false;
  return true;
}

void Queue::remove_taken(const Taken& t, WriteBatch& batch) {
  batch.add(Op::del_message(t.db, lane_of(t.seq).store_id, local(t.seq)));
  engine_.note_space_freed();
}

void Queue::put_back(const Taken& t) {
  lane_of(t.seq).positions.unread(local(t.seq), {t.db, t.message->body.size()}, t.was_returned);
  schedule_dispatch();
}

void Queue::drop_storage(WriteBatch& batch) {
  deleted = true;
  for (Lane& lane : lanes_) {
    batch.add(Op::drop_queue(lane.store_id));
    lane.positions.clear();
  }
}

void Queue::on_commits(const storage::CommitOutcomes& outcomes) {
  for (Lane& lane : lanes_) {
    while (!lane.tail.empty() && lane.tail.front().commit <= outcomes.through) {
      // A message whose commit failed was never stored.
      if (outcomes.failed_commit(lane.tail.front().commit))
        lane.positions.never_stored(lane.tail_base, lane.tail.front().message->body.size());
      lane.tail.pop_front();
      ++lane.tail_base;
    }
    lane.positions.removed_through(outcomes.through);
  }
  std::erase_if(rewritten_, [&](const auto& entry) { return entry.second.second <= outcomes.through; });
  if (dedup_) dedup_->on_commits(outcomes);
}

// ---- timers ---------------------------------------------------------------------------

void Queue::expiry_due(uint64_t seq, Db db, uint64_t now, std::string_view key, WriteBatch& batch) {
  QueuePositions& positions = lane_of(seq).positions;
  const bool waiting = positions.is_delayed(local(seq));
  if (deleted || !(waiting || positions.is_ready(local(seq)))) {
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
    positions.end_delay(local(seq));
  } else {
    // Out of the positions before dead-lettering, which may read this queue.
    positions.remove_ready(local(seq), m->body.size(), batch.upcoming_id());
    engine_.track_inflight(shared_from_this());
  }
  discard(seq, db, m, "expired", batch);
}

void Queue::retry_due(uint64_t seq, std::string_view key, WriteBatch& batch) {
  batch.add(Op::del(Db::schedule, std::string(key)));
  QueuePositions& positions = lane_of(seq).positions;
  auto held = positions.end_delay(local(seq));
  if (deleted || !held) return;
  positions.give_back(local(seq), *held);
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

void Queue::add_consumer(std::shared_ptr<Consumer> c) {
  top_consumer_priority_ = consumers.empty() ? c->priority : std::max(top_consumer_priority_, c->priority);
  consumers.push_back(std::move(c));
  had_consumer = true;
  schedule_dispatch();
}

void Queue::remove_consumer(const std::shared_ptr<Consumer>& c) {
  // The active consumer of a single-active-consumer queue hands over once what it holds is
  // settled: its unacknowledged messages, if requeued, are the next one's first (RabbitMQ).
  if (settings.single_active_consumer && !consumers.empty() && consumers.front() == c && c->unacked > 0)
    departing_ = c;
  std::erase(consumers, c);
  top_consumer_priority_ = INT64_MIN;
  for (const auto& other : consumers) top_consumer_priority_ = std::max(top_consumer_priority_, other->priority);
  schedule_dispatch();  // with a single active consumer, the next one takes over
}

const Consumer* Queue::active_consumer() const {
  return settings.single_active_consumer && !consumers.empty() ? consumers.front().get() : nullptr;
}

// The consumer offered the next message: the active one of a single-active-consumer
// queue; else the highest priority one that can take it, round robin among equals.
std::shared_ptr<Consumer> Queue::next_consumer() {
  if (settings.single_active_consumer) {
    if (auto departing = departing_.lock(); departing && departing->unacked > 0) return nullptr;
    departing_.reset();
    const auto& c = consumers.front();
    return c->channel->can_deliver(*c) ? c : nullptr;
  }
  const size_t n = consumers.size();
  std::shared_ptr<Consumer> chosen;
  size_t chosen_at = 0;
  for (size_t i = 0; i < n; ++i) {
    const size_t at = (round_robin_ + i) % n;
    const auto& c = consumers[at];
    if ((!chosen || c->priority > chosen->priority) && c->channel->can_deliver(*c)) {
      chosen = c;
      chosen_at = at;
      if (c->priority >= top_consumer_priority_) break;  // none can be preferred to it
    }
  }
  if (chosen) round_robin_ = (chosen_at + 1) % n;
  return chosen;
}

void Queue::dispatch(WriteBatch& batch) {
  dispatch_scheduled_ = false;
  while (ready() > 0 && !deleted && !consumers.empty()) {
    std::shared_ptr<Consumer> chosen = next_consumer();
    if (!chosen) return;
    auto taken = take_next(batch);
    if (!taken) return;
    chosen->channel->deliver(chosen, *this, std::move(*taken), batch);
  }
}

}  // namespace warren::core
