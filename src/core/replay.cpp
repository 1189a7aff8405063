// Replay: moving or copying messages between queues, typically from a dead-letter queue
// back to where they died; and the consumer-side idempotency keys.
#include <fmt/format.h>

#include "core/engine.h"
#include "core/errors.h"
#include "storage/keys.h"
#include "wire/properties_codec.h"

namespace warren::core {

using storage::Db;
using storage::Op;
namespace {

constexpr uint64_t kMovesPerCommit = 1000;

// The queue a dead-lettered message came from: its newest x-death entry.
std::optional<std::string> death_queue(const storage::MessageData& m) {
  auto p = wire::decode_properties(m.properties);
  const FieldValue* deaths = p && p->headers ? p->headers->find("x-death") : nullptr;
  const auto* list = deaths ? deaths->as<FieldArray>() : nullptr;
  if (!list || list->empty() || !list->front().as<FieldTable>()) return std::nullopt;
  const FieldValue* q = list->front().as<FieldTable>()->find("queue");
  if (!q || !q->as<std::string>()) return std::nullopt;
  return *q->as<std::string>();
}

// A fresh message for its new queue: no counts or timers from the old one.
MessagePtr replayed(const storage::MessageData& m) {
  auto copy = std::make_shared<storage::MessageData>(m);
  copy->delivery_count = 0;
  copy->ready_at = 0;
  return copy;
}

}  // namespace

Result<Engine::Replayed> Engine::replay(std::string_view vhost_name, std::string_view from,
                                        std::string_view to, uint64_t max, bool copy) {
  WARREN_REQUIRE_LOOP(*token_);
  const MethodId m{0, 0};
  Vhost* vhost = find_vhost(vhost_name);
  if (!vhost) return error(ReplyCode::not_found, fmt::format("no vhost '{}'", vhost_name), m);
  auto source_it = vhost->queues.find(std::string(from));
  if (source_it == vhost->queues.end()) return no_queue(vhost->name, from, m);
  std::shared_ptr<Queue> source = source_it->second;
  std::shared_ptr<Queue> fixed;
  if (!to.empty()) {
    auto it = vhost->queues.find(std::string(to));
    if (it == vhost->queues.end()) return no_queue(vhost->name, to, m);
    fixed = it->second;
  }
  Replayed out;
  auto target_of = [&](const storage::MessageData& msg) -> std::shared_ptr<Queue> {
    if (fixed) return fixed;
    auto name = death_queue(msg);
    auto it = name ? vhost->queues.find(*name) : vhost->queues.end();
    if (it != vhost->queues.end()) return it->second;
    out.stopped = error(ReplyCode::not_found,
                        fmt::format("a message in {} names no existing queue in its x-death",
                                    resource("queue", from, vhost->name)),
                        m);
    return nullptr;
  };
  if (copy) {  // the originals stay, so the copies need not commit together
    WriteBatch batch(*this);
    source->for_each_ready(max, [&](const MessagePtr& msg) {
      auto target = target_of(*msg);
      if (!target) return false;
      target->enqueue(replayed(*msg), batch);
      ++out.count;
      return true;
    });
    out.commit = batch.id();
    return out;
  }
  while (out.count < max && out.stopped.ok()) {
    WriteBatch batch(*this);  // each round is one commit: a message is in one queue or the other
    uint64_t round = 0;
    for (; round < kMovesPerCommit && out.count < max; ++round) {
      auto taken = source->take_next(batch);
      if (!taken) break;
      auto target = target_of(*taken->message);
      if (!target || target == source) {
        source->put_back(*taken);
        if (target == source && out.stopped.ok())
          out.stopped = error(ReplyCode::precondition_failed, "cannot move a queue's messages into itself", m);
        break;
      }
      target->enqueue(replayed(*taken->message), batch);
      source->remove_taken(*taken, batch);
      ++out.count;
    }
    out.commit = std::max(out.commit, batch.id());
    if (round < kMovesPerCommit) break;
  }
  return out;
}

Engine::DoneAnswer Engine::is_done(std::string_view key) {
  WARREN_REQUIRE_LOOP(*token_);
  std::string digest = storage::digest128(key);
  if (auto it = pending_done_.find(digest); it != pending_done_.end()) return {false, it->second};
  storage::ReadView view(*store_);
  return {view.get(Db::keys, storage::done_key(digest)).has_value(), 0};
}

void Engine::mark_done(std::string_view key, WriteBatch& batch) {
  std::string digest = storage::digest128(key);
  pending_done_[digest] = batch.add(Op::put(Db::keys, storage::done_key(digest), storage::be64_string(now_ms())));
}

uint64_t Engine::forget_done(std::string_view key) {
  WARREN_REQUIRE_LOOP(*token_);
  std::string digest = storage::digest128(key);
  WriteBatch batch(*this);
  pending_done_[digest] = batch.add(Op::del(Db::keys, storage::done_key(digest)));
  return batch.id();
}

}  // namespace warren::core
