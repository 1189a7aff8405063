#include "storage/op_apply.h"

#include <algorithm>

#include "storage/keys.h"

namespace warren::storage {
namespace {

constexpr std::string_view kLastFullKey = "store_was_full";

MDB_val val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
std::string_view view(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }
std::string_view view(const MessageKey& k) { return {k.data(), k.size()}; }
std::string_view view(const ScheduleKey& k) { return {k.data(), k.size()}; }

}  // namespace

// ---- the ops ------------------------------------------------------------------------------

Op Op::put(Db db, std::string key, std::string value) {
  Op op;
  op.kind = Kind::put;
  op.db = db;
  op.key = std::move(key);
  op.value = std::move(value);
  return op;
}
Op Op::del(Db db, std::string key) {
  Op op;
  op.kind = Kind::del;
  op.db = db;
  op.key = std::move(key);
  return op;
}
Op Op::put_message(Db db, uint64_t queue_id, uint64_t seq,
                   std::shared_ptr<const MessageData> message) {
  Op op;
  op.kind = Kind::put_message;
  op.db = db;
  op.queue_id = queue_id;
  op.seq = seq;
  op.bytes = message->body.size();
  op.message = std::move(message);
  return op;
}
Op Op::del_message(Db db, uint64_t queue_id, uint64_t seq) {
  Op op;
  op.kind = Kind::del_message;
  op.db = db;
  op.queue_id = queue_id;
  op.seq = seq;
  return op;
}
Op Op::del_message_range(Db db, uint64_t queue_id, uint64_t from, uint64_t to) {
  Op op;
  op.kind = Kind::del_message_range;
  op.db = db;
  op.queue_id = queue_id;
  op.seq = from;
  op.seq_end = to;
  return op;
}
Op Op::set_delivered_mark(uint64_t queue_id, uint64_t mark) {
  Op op;
  op.kind = Kind::set_delivered_mark;
  op.db = Db::queue_stats;
  op.queue_id = queue_id;
  op.seq = mark;
  return op;
}
Op Op::replace_message(Db db, uint64_t queue_id, uint64_t seq,
                       std::shared_ptr<const MessageData> message) {
  Op op = put_message(db, queue_id, seq, std::move(message));
  op.kind = Kind::replace_message;
  return op;
}
Op Op::dedup_insert(uint64_t queue_id, std::string_view digest, uint64_t order, uint64_t now_ms,
                    uint64_t max_entries, uint64_t ttl_ms) {
  Op op;
  op.value = be64_string(order);
  op.kind = Kind::dedup_insert;
  op.db = Db::keys;
  op.queue_id = queue_id;
  op.key = std::string(digest);
  op.seq = now_ms;
  op.seq_end = max_entries;
  op.bytes = ttl_ms;
  return op;
}
Op Op::drop_queue(uint64_t queue_id) {
  Op op;
  op.kind = Kind::drop_queue;
  op.db = Db::queue_stats;
  op.queue_id = queue_id;
  return op;
}

// ---- applying them --------------------------------------------------------------------

int OpApplier::apply(const std::vector<Op>& ops, Subset subset) {
  for (const Op& op : ops) {
    // A dedup entry stands or falls with its message: a refused message must not leave a
    // key that would make its retry look like a duplicate.
    bool new_message = op.kind == Op::Kind::put_message || op.kind == Op::Kind::dedup_insert;
    if (subset == Subset::only_messages && !new_message) continue;
    if (subset == Subset::without_messages && new_message) continue;
    if (int rc = apply_one(op); rc != MDB_SUCCESS) return rc;
  }
  if (int rc = trim_windows(); rc != MDB_SUCCESS) return rc;
  if (int rc = write_stats(); rc != MDB_SUCCESS) return rc;
  if (subset == Subset::without_messages) {
    // Always a real commit, even with nothing else to write: LMDB reuses the pages a commit
    // frees only two commits later, so the retry of the messages needs this one to happen.
    step_ = "write meta";
    return put_value(Db::meta, kLastFullKey, kLastFullKey);
  }
  return MDB_SUCCESS;
}

int OpApplier::apply_one(const Op& op) {
  switch (op.kind) {
    case Op::Kind::put: return put(op);
    case Op::Kind::del: return del(op);
    case Op::Kind::put_message: return put_message(op);
    case Op::Kind::replace_message: return replace_message(op);
    case Op::Kind::del_message: return del_message(op);
    case Op::Kind::del_message_range: return del_message_range(op);
    case Op::Kind::drop_queue: return drop_queue(op);
    case Op::Kind::dedup_insert: return dedup_insert(op);
    case Op::Kind::set_delivered_mark: return set_delivered_mark(op);
  }
  return MDB_SUCCESS;
}

// ---- one function per op --------------------------------------------------------------

int OpApplier::put(const Op& op) {
  step_ = "write";
  return put_value(op.db, op.key, op.value);
}

int OpApplier::del(const Op& op) {
  step_ = "delete";
  return del_value(op.db, op.key);
}

int OpApplier::put_message(const Op& op) {
  step_ = "write message";
  int rc = put_record(op);
  if (rc == MDB_SUCCESS) rc = schedule(op);
  if (rc == MDB_SUCCESS && op.db == Db::messages) {
    stats_[op.queue_id].count += 1;
    stats_[op.queue_id].bytes += int64_t(op.bytes);
  }
  return rc;
}

int OpApplier::replace_message(const Op& op) {
  step_ = "rewrite message";
  auto key = message_key(op.queue_id, op.seq);
  MDB_val k = val(view(key)), v;
  if (mdb_get(txn_, dbi(op.db), &k, &v) != MDB_SUCCESS) return MDB_SUCCESS;  // settled meanwhile
  // The old record's timers go; the new record's are scheduled afresh.
  int rc = unschedule(op.queue_id, op.seq, peek_timers(view(v)).value_or(RecordTimers{}));
  if (rc == MDB_SUCCESS) rc = put_record(op);
  if (rc == MDB_SUCCESS) rc = schedule(op);
  return rc;
}

int OpApplier::del_message(const Op& op) {
  step_ = "delete message";
  auto from = message_key(op.queue_id, op.seq), to = message_key(op.queue_id, op.seq + 1);
  return erase_range(op.db, view(from), view(to), [&](std::string_view, std::string_view record) {
    return message_removed(op.db, op.queue_id, op.seq, record, true);
  });
}

int OpApplier::del_message_range(const Op& op) {
  step_ = "delete messages";
  auto from = message_key(op.queue_id, op.seq), to = message_key(op.queue_id, op.seq_end);
  return erase_range(op.db, view(from), view(to), [&](std::string_view key, std::string_view record) {
    return message_removed(op.db, op.queue_id, parse_message_key(key).seq, record, true);
  });
}

int OpApplier::drop_queue(const Op& op) {
  step_ = "drop queue";
  auto from = message_key(op.queue_id, 0), to = message_key(op.queue_id, UINT64_MAX);
  for (Db db : {Db::messages, Db::transient}) {
    int rc = erase_range(db, view(from), view(to), [&](std::string_view key, std::string_view record) {
      return message_removed(db, op.queue_id, parse_message_key(key).seq, record, false);
    });
    if (rc != MDB_SUCCESS) return rc;
  }
  for (char kind : {'O', 'C'}) {  // the dedup window
    int rc = erase_range(Db::keys, keys_key(kind, op.queue_id), keys_key(kind, op.queue_id + 1),
                         [](std::string_view, std::string_view) { return MDB_SUCCESS; });
    if (rc != MDB_SUCCESS) return rc;
  }
  stats_[op.queue_id].drop = true;
  return MDB_SUCCESS;
}

int OpApplier::dedup_insert(const Op& op) {
  step_ = "append to dedup window";
  WindowState& w = windows_[op.queue_id];
  if (!w.loaded) {
    auto size_key = keys_key('C', op.queue_id);
    MDB_val k = val(size_key), v;
    if (mdb_get(txn_, dbi(Db::keys), &k, &v) == MDB_SUCCESS && v.mv_size == 16) {
      w.next_order = get_be64(static_cast<const char*>(v.mv_data));
      w.entries = get_be64(static_cast<const char*>(v.mv_data) + 8);
    }
    w.loaded = true;
  }
  uint64_t order = op.value.size() == 8 ? get_be64(op.value.data()) : w.next_order;
  w.next_order = std::max(w.next_order, order + 1);
  ++w.entries;
  w.now = op.seq;
  w.max_entries = op.seq_end;
  w.ttl = op.bytes;
  return put_value(Db::keys, keys_key('O', op.queue_id, be64_string(order)), op.key + be64_string(op.seq));
}

int OpApplier::set_delivered_mark(const Op& op) {
  stats_[op.queue_id].mark = op.seq;
  return MDB_SUCCESS;
}

// ---- what the ops imply ---------------------------------------------------------------

int OpApplier::trim_windows() {
  step_ = "trim dedup window";
  for (auto& [queue_id, window] : windows_)
    if (int rc = trim_window(queue_id, window); rc != MDB_SUCCESS) return rc;
  return MDB_SUCCESS;
}

// Trims a window from its head, oldest first: by count, then by age, and records its size.
// Appends at the tail and deletes at the head touch few pages.
int OpApplier::trim_window(uint64_t queue_id, WindowState& w) {
  MDB_cursor* cur = nullptr;
  int rc = mdb_cursor_open(txn_, dbi(Db::keys), &cur);
  auto from = keys_key('O', queue_id), to = keys_key('O', queue_id + 1);
  MDB_val k = val(from), v;
  bool at = rc == MDB_SUCCESS && mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) == MDB_SUCCESS;
  while (rc == MDB_SUCCESS && at && view(k) < to && w.entries > 0) {
    uint64_t inserted = v.mv_size == 24 ? get_be64(static_cast<const char*>(v.mv_data) + 16) : 0;
    if (w.entries <= w.max_entries && !(w.ttl && inserted + w.ttl < w.now)) break;
    rc = mdb_cursor_del(cur, 0);
    changed_ = true;
    --w.entries;
    // After a delete the cursor already stands on the next entry.
    at = rc == MDB_SUCCESS && mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT) == MDB_SUCCESS;
  }
  if (cur) mdb_cursor_close(cur);
  if (rc == MDB_SUCCESS)
    rc = put_value(Db::keys, keys_key('C', queue_id), be64_string(w.next_order) + be64_string(w.entries));
  return rc;
}

int OpApplier::write_stats() {
  step_ = "write queue stats";
  for (auto& [queue_id, delta] : stats_) {
    auto key = queue_id_key(queue_id);
    if (delta.drop) {
      if (int rc = del_value(Db::queue_stats, key); rc != MDB_SUCCESS) return rc;
      continue;
    }
    QueueStats s;
    MDB_val k = val(key), v;
    if (mdb_get(txn_, dbi(Db::queue_stats), &k, &v) == MDB_SUCCESS)
      s = decode_stats(view(v)).value_or(QueueStats{});
    s.count = uint64_t(int64_t(s.count) + delta.count);
    s.bytes = uint64_t(int64_t(s.bytes) + delta.bytes);
    if (delta.mark) s.delivered_mark = *delta.mark;
    if (int rc = put_value(Db::queue_stats, key, encode(s)); rc != MDB_SUCCESS) return rc;
  }
  return MDB_SUCCESS;
}

// ---- helpers ----------------------------------------------------------------------------

int OpApplier::put_value(Db db, std::string_view key, std::string_view value) {
  MDB_val k = val(key), v = val(value);
  changed_ = true;
  return mdb_put(txn_, dbi(db), &k, &v, 0);
}

int OpApplier::del_value(Db db, std::string_view key) {
  MDB_val k = val(key);
  int rc = mdb_del(txn_, dbi(db), &k, nullptr);
  if (rc == MDB_NOTFOUND) return MDB_SUCCESS;
  changed_ = true;
  return rc;
}

template <class F>
int OpApplier::erase_range(Db db, std::string_view from, std::string_view to, F&& before_erase) {
  MDB_cursor* cur;
  int rc = mdb_cursor_open(txn_, dbi(db), &cur);
  if (rc != MDB_SUCCESS) return rc;
  std::string start(from);
  // Seek afresh after each delete: simple, and ranges are short or rare.
  for (;;) {
    MDB_val k = val(start), v;
    if (mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) != MDB_SUCCESS || view(k) >= to) break;
    rc = before_erase(view(k), view(v));
    if (rc == MDB_SUCCESS) rc = mdb_cursor_del(cur, 0);
    if (rc != MDB_SUCCESS) break;
    changed_ = true;
  }
  mdb_cursor_close(cur);
  return rc;
}

int OpApplier::put_record(const Op& op) {
  auto key = message_key(op.queue_id, op.seq);
  MDB_val k = val(view(key)), v{encoded_size(*op.message), nullptr};
  changed_ = true;
  int rc = mdb_put(txn_, dbi(op.db), &k, &v, MDB_RESERVE);
  if (rc == MDB_SUCCESS) encode_into(*op.message, static_cast<char*>(v.mv_data));
  return rc;
}

int OpApplier::schedule(const Op& op) {
  // The value says where the message is and its body size, so a timer needs no lookup.
  std::string value(1, char(op.db));
  value += be64_string(op.bytes);
  for (auto [kind, time] : {std::pair{Timer::expiry, op.message->expires_at},
                            std::pair{Timer::retry, op.message->ready_at}}) {
    if (!time) continue;
    if (int rc = put_value(Db::schedule, view(schedule_key(kind, time, op.queue_id, op.seq)), value);
        rc != MDB_SUCCESS)
      return rc;
  }
  return MDB_SUCCESS;
}

int OpApplier::unschedule(uint64_t queue_id, uint64_t seq, const RecordTimers& timers) {
  for (auto [kind, time] : {std::pair{Timer::expiry, timers.expires_at},
                            std::pair{Timer::retry, timers.ready_at}}) {
    if (!time) continue;
    if (int rc = del_value(Db::schedule, view(schedule_key(kind, time, queue_id, seq))); rc != MDB_SUCCESS)
      return rc;
  }
  return MDB_SUCCESS;
}

int OpApplier::message_removed(Db db, uint64_t queue_id, uint64_t seq, std::string_view record,
                               bool counted) {
  auto timers = peek_timers(record).value_or(RecordTimers{});
  if (counted && db == Db::messages) {
    stats_[queue_id].count -= 1;
    stats_[queue_id].bytes -= int64_t(timers.body_bytes);
  }
  return unschedule(queue_id, seq, timers);
}

}  // namespace warren::storage
