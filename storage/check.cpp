#include "storage/check.h"

#include <fmt/format.h>

#include <filesystem>
#include <map>

#include "storage/keys.h"
#include "storage/lmdb_pages.h"
#include "storage/records.h"

namespace warren::storage {
namespace {

std::string hex(std::string_view bytes) {
  std::string out;
  for (unsigned char c : bytes.substr(0, 24)) out += fmt::format("{:02x}", c);
  return bytes.size() > 24 ? out + "..." : out;
}

// Whether a record of `db` reads back whole.
bool readable(Db db, std::string_view value) {
  switch (db) {
    case Db::exchanges: return decode_exchange(value).has_value();
    case Db::queues: return decode_queue(value).has_value();
    case Db::bindings: return decode_binding(value).has_value();
    case Db::queue_stats: return decode_stats(value).has_value();
    case Db::messages:
    case Db::transient: return decode_message(value).has_value();
    default: return true;  // meta, schedule and keys hold plain values, not records
  }
}

std::string damaged_record(Db db, std::string_view key) {
  if (db == Db::messages || db == Db::transient) {
    auto id = parse_message_key(key);
    return fmt::format("{}: message {} of queue {} is damaged", db_name(db), id.seq, id.queue_id);
  }
  return fmt::format("{}: the record at key {} is damaged", db_name(db), hex(key));
}

// Opens and closes the store, which replays its journal into LMDB as a start would.
Status bring_up_to_date(const StoreOptions& options) {
  auto store = Store::open(options);
  return store.ok() ? Status{} : store.status();
}

std::string data_file(const StoreOptions& options) { return options.path + "/data.mdb"; }

}  // namespace

Result<CheckReport> check_store(const StoreOptions& options) {
  CheckReport report;
  if (Status s = bring_up_to_date(options); !s) {
    // Only damage is worth reading past; a store in use or out of reach is not checked.
    if (s.storage_fault() != StorageFault::corruption) return s;
    report.problems.push_back(fmt::format("the store does not open: {}", s.text()));
  }
  std::map<uint64_t, uint64_t> counted;  // queue id -> persistent messages found
  std::map<uint64_t, QueueStats> stats;
  auto walk = walk_lmdb_file(FileIo(), data_file(options), key_has_shape,
                             [&](std::string_view name, std::string_view key, std::string_view value) {
                               auto db = db_named(name);
                               if (!db) return;
                               ++report.records;
                               // A damaged message still counts: its damage is reported once.
                               if (*db == Db::messages) ++counted[parse_message_key(key).queue_id];
                               if (!readable(*db, value)) report.problems.push_back(damaged_record(*db, key));
                               else if (*db == Db::queue_stats) stats[get_be64(key.data())] = *decode_stats(value);
                             });
  if (!walk.ok()) {
    report.problems.push_back(walk.status().text());
    return report;
  }
  for (auto& damage : walk->damage) report.problems.push_back(damage);
  report.notes = walk->notes;
  if (walk->damage.empty())  // with pages unread, the counts cannot be compared
    for (auto& [queue, s] : stats)
      if (s.count != counted[queue])
        report.problems.push_back(fmt::format("queue_stats: queue {} counts {} messages, {} are stored", queue,
                                              s.count, counted[queue]));
  return report;
}

Result<std::vector<StoredQueue>> stored_queues(const StoreOptions& options) {
  std::map<uint64_t, StoredQueue> queues;  // by queue id
  std::map<uint64_t, QueueStats> stats;    // by store id (a priority queue has one per lane)
  auto walk = walk_lmdb_file(FileIo(), data_file(options), key_has_shape,
                             [&](std::string_view name, std::string_view key, std::string_view value) {
                               auto db = db_named(name);
                               if (db == Db::queues) {
                                 if (auto r = decode_queue(value)) queues[r->id] = {r->vhost, r->name};
                               } else if (db == Db::queue_stats && key.size() == 8) {
                                 if (auto s = decode_stats(value)) stats[get_be64(key.data())] = *s;
                               }
                             });
  if (!walk.ok()) return walk.status();
  constexpr uint64_t kLaneMask = (uint64_t{1} << 56) - 1;  // core/queue.h: the lane is the top byte
  for (const auto& [store_id, s] : stats)
    if (auto it = queues.find(store_id & kLaneMask); it != queues.end()) {
      it->second.messages += s.count;
      it->second.bytes += s.bytes;
    }
  std::vector<StoredQueue> out;
  for (auto& [id, q] : queues) out.push_back(std::move(q));
  return out;
}

Result<SalvageReport> salvage_store(const StoreOptions& from, const StoreOptions& to) {
  if (std::filesystem::exists(data_file(to)))
    return Status::storage(StorageFault::io_error,
                           fmt::format("salvage writes a new store, and {} already holds one", to.path));
  SalvageReport report;
  StoreOptions source = from;
  source.accept_data_loss = true;
  if (Status s = bring_up_to_date(source); !s) {
    if (s.storage_fault() != StorageFault::corruption) return s;
    report.lost.push_back(fmt::format("the journal was not replayed: {}", s.text()));
  }
  auto target = Store::open(to);
  if (!target.ok()) return target.status();
  std::vector<Op> ops;
  Status written;
  auto flush = [&] {
    if (!ops.empty() && written) written = (*target)->write(ops);
    ops.clear();
  };
  // Copied as read: LMDB's order puts a queue's messages in sequence order, and a message
  // put again indexes its timers as it did.
  auto walk = walk_lmdb_file(FileIo(), data_file(from), key_has_shape,
                             [&](std::string_view name, std::string_view key, std::string_view value) {
                               auto db = db_named(name);
                               if (!db || *db == Db::meta || *db == Db::transient || *db == Db::schedule) return;
                               if (!readable(*db, value)) return report.lost.push_back(damaged_record(*db, key));
                               if (*db == Db::messages) {
                                 auto id = parse_message_key(key);
                                 ops.push_back(Op::put_message(Db::messages, id.queue_id, id.seq,
                                                               std::make_shared<const MessageData>(*decode_message(value))));
                                 ++report.messages;
                               } else if (*db == Db::queue_stats) {
                                 ops.push_back(Op::set_delivered_mark(get_be64(key.data()), decode_stats(value)->delivered_mark));
                               } else {
                                 ops.push_back(Op::put(*db, std::string(key), std::string(value)));
                                 report.definitions += *db != Db::keys;
                               }
                               if (ops.size() >= 1000) flush();
                             });
  if (!walk.ok()) return walk.status();
  flush();
  if (!written) return written;
  for (auto& damage : walk->damage) report.lost.push_back(damage + " (what lies below it is lost)");
  return report;
}

}  // namespace warren::storage
