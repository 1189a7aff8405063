#include "core/dedup_window.h"

#include "storage/keys.h"

namespace warren::core {

DedupWindow::Digest DedupWindow::from_bytes(std::string_view b) {
  if (b.size() != 16) return {};
  return {storage::get_be64(b.data()), storage::get_be64(b.data() + 8)};
}

void DedupWindow::load(storage::ReadView& view, uint64_t queue_id, uint64_t now) {
  loaded_ = true;
  auto from = storage::keys_key('O', queue_id), to = storage::keys_key('O', queue_id + 1);
  view.scan(storage::Db::keys, from, to, [&](std::string_view key, std::string_view value) {
    if (key.size() != 17 || value.size() != 24) return true;
    uint64_t order = storage::get_be64(key.data() + 9);
    Digest d = from_bytes(value.substr(0, 16));
    log_.emplace_back(d, order);
    index_[d] = Entry{order, storage::get_be64(value.data() + 16), 0};
    next_order_ = order + 1;
    return true;
  });
  if (auto size = view.get(storage::Db::keys, storage::keys_key('C', queue_id));
      size && size->size() == 16)
    next_order_ = std::max(next_order_, storage::get_be64(size->data()));
  trim(now);
}

std::optional<uint64_t> DedupWindow::find(const Digest& d, uint64_t now) const {
  auto it = index_.find(d);
  if (it == index_.end()) return std::nullopt;
  if (settings_.cache_ttl_ms && it->second.inserted_at + settings_.cache_ttl_ms < now)
    return std::nullopt;
  return it->second.commit;
}

uint64_t DedupWindow::insert(const Digest& d, uint64_t now, uint64_t commit) {
  uint64_t order = next_order_++;
  log_.emplace_back(d, order);
  index_[d] = Entry{order, now, commit};
  pending_.emplace_back(commit, d);
  trim(now);
  return order;
}

// The same rule the store applies to its log: oldest out first, by count, then by age.
void DedupWindow::trim(uint64_t now) {
  while (!log_.empty()) {
    auto [digest, order] = log_.front();
    auto it = index_.find(digest);
    bool live = it != index_.end() && it->second.order == order;
    bool too_old = live && settings_.cache_ttl_ms &&
                   it->second.inserted_at + settings_.cache_ttl_ms < now;
    if (log_.size() <= settings_.cache_size && !too_old && live) break;
    if (live) index_.erase(it);
    log_.pop_front();
  }
}

void DedupWindow::on_commits(const storage::CommitOutcomes& outcomes) {
  while (!pending_.empty() && pending_.front().first <= outcomes.through) {
    auto [commit, digest] = pending_.front();
    pending_.pop_front();
    auto it = index_.find(digest);
    if (it == index_.end() || it->second.commit != commit) continue;
    if (outcomes.failed_commit(commit))
      index_.erase(it);  // never stored: a retry of that message must get in
    else
      it->second.commit = 0;
  }
}

}  // namespace warren::core
