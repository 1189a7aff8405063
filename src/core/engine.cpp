#include "core/engine.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "common/log.h"
#include "core/args.h"
#include "core/dead_letter.h"
#include "storage/keys.h"
#include "wire/field_codec.h"
#include "wire/properties_codec.h"

namespace warren::core {

using storage::Db;
using storage::Op;

Result<std::unique_ptr<Engine>> Engine::open(asio::io_context& io, const EngineOptions& options) {
  storage::StoreOptions so;
  so.path = options.broker.data_dir;
  so.durability = options.broker.durability;
  so.accept_data_loss = options.broker.accept_data_loss;
  so.initial_map_size = options.broker.initial_map_size;
  so.max_map_size = options.broker.max_map_size;
  so.faults = options.faults;
  auto store = storage::Store::open(so);
  if (!store.ok()) return store.status();
  std::unique_ptr<Engine> engine(new Engine(io, options, std::move(store.value())));
  if (Status s = engine->recover(); !s) return s;
  if (engine->users_.empty()) {
    engine->users_.put(User{.name = "guest",
                            .password_hash = hash_password("guest"),
                            .tags = {"administrator"},
                            .every_vhost = true});
    engine->default_user_ = true;
  }
  if (options.memory_high_watermark) engine->watch_memory();
  return engine;
}

Engine::Engine(asio::io_context& io, EngineOptions options, std::unique_ptr<storage::Store> store)
    : io_(io),
      options_(std::move(options)),
      store_(std::move(store)),
      timer_(io),
      memory_timer_(io),
      rng_(uint64_t(std::chrono::steady_clock::now().time_since_epoch().count())) {
  add_vhost("/");
}

Vhost& Engine::add_vhost(std::string_view name) {
  if (Vhost* existing = find_vhost(name)) return *existing;
  auto vhost = std::make_unique<Vhost>(*this, std::string(name));
  vhost->create_default_exchanges();
  return *vhosts_.emplace(std::string(name), std::move(vhost)).first->second;
}

namespace {
// Settings the core keeps itself (engine.h's settings are for the layers above).
std::string vhost_setting(std::string_view name) {
  return "vhost" + std::string(1, '\0') + std::string(name);
}
std::string user_setting(std::string_view name) {
  return "user" + std::string(1, '\0') + std::string(name);
}
}  // namespace

CommitId Engine::create_vhost(std::string_view name) {
  add_vhost(name);
  return put_setting(vhost_setting(name), "");
}

void Engine::drop_default_user() {
  if (default_user_) users_.remove("guest");
  default_user_ = false;
}

CommitId Engine::store_user(User user) {
  if (default_user_) {  // guest becomes a stored user like the one added now, as in RabbitMQ
    default_user_ = false;
    if (const User* guest = users_.find("guest"); guest && user.name != "guest")
      put_setting(user_setting("guest"), Users::encode(*guest));
  }
  std::string bytes = Users::encode(user);
  std::string key = user_setting(user.name);
  users_.put(std::move(user));
  return put_setting(key, bytes);
}

CommitId Engine::delete_user(std::string_view name) {
  if (!users_.remove(name)) return 0;
  return delete_setting(user_setting(name));
}

Result<CommitId> Engine::delete_vhost(std::string_view name) {
  WARREN_REQUIRE_LOOP(*token_);
  auto it = vhosts_.find(name);
  if (it == vhosts_.end())
    return Status::error(ReplyCode::not_found, fmt::format("no vhost '{}'", name));
  Vhost* vhost = it->second.get();
  std::vector<std::shared_ptr<Connection>> users;
  for (const auto& c : connections_)
    if (c->vhost == vhost) {
      if (!c->force_close)
        return Status::error(ReplyCode::precondition_failed,
                             fmt::format("vhost '{}' is in use by an in-process connection", name));
      users.push_back(c);
    }
  for (const auto& c : users) {
    c->force_close(fmt::format("vhost '{}' is deleted", name));
    disconnect(*c);
  }
  CommitId commit = 0;
  {
    WriteBatch batch(*this);
    vhost->remove_all(batch);
    batch.add(storage::Op::del(Db::meta, "setting:" + vhost_setting(name)));
    commit = batch.id();
  }
  vhosts_.erase(it);
  return commit;
}

Engine::~Engine() {
  std::lock_guard hold(*token_);  // re-entrant: usually the destroying thread holds it already
  shutdown();
}

Vhost* Engine::find_vhost(std::string_view name) {
  auto it = vhosts_.find(name);
  return it == vhosts_.end() ? nullptr : it->second.get();
}

// Vhosts an operator created, and users.
void Engine::recover_settings(storage::ReadView& view) {
  const std::string prefix = "setting:";
  view.scan(Db::meta, prefix, "setting;", [&](std::string_view key, std::string_view value) {
    key.remove_prefix(prefix.size());
    auto nul = key.find('\0');
    if (nul == std::string_view::npos) return true;
    const std::string_view kind = key.substr(0, nul), name = key.substr(nul + 1);
    if (kind == "vhost") add_vhost(name);
    if (kind == "user")
      if (auto user = Users::decode(value)) users_.put(std::move(*user));
    return true;
  });
}

Status Engine::recover() {
  std::vector<std::shared_ptr<Queue>> recovered;
  // A vhost that holds durable definitions comes back even if no flag names it.
  {
    storage::ReadView view(*store_);
    if (!view.status()) return view.status();
    for (const auto& name : options_.vhosts) add_vhost(name);
    recover_settings(view);
    view.for_each(Db::exchanges, [&](std::string_view, std::string_view bytes) {
      auto r = storage::decode_exchange(bytes);
      auto type = r ? Exchange::parse_type(r->type) : std::nullopt;
      Vhost* vhost = r ? &add_vhost(r->vhost) : nullptr;
      if (!type || !vhost) return;
      auto x = std::make_shared<Exchange>();
      x->name = r->name;
      x->type_name = r->type;
      x->type = *type;
      x->durable = true;
      x->auto_delete = r->auto_delete;
      x->internal = r->internal;
      x->arguments = wire::decode_table(r->arguments).value_or(FieldTable{});
      vhost->restore_exchange(std::move(x));
    });
    view.for_each(Db::queues, [&](std::string_view, std::string_view bytes) {
      auto r = storage::decode_queue(bytes);
      Vhost* vhost = r ? &add_vhost(r->vhost) : nullptr;
      if (!vhost) return;
      auto q = std::make_shared<Queue>(*this, r->id, r->vhost, r->name);
      q->durable = true;
      q->auto_delete = r->auto_delete;
      q->arguments = wire::decode_table(r->arguments).value_or(FieldTable{});
      (void)apply_queue_arguments(*q, q->arguments);  // checked when it was declared
      next_queue_id_ = std::max(next_queue_id_, r->id + 1);
      vhost->restore_queue(q);
      recovered.push_back(std::move(q));
    });
    view.for_each(Db::bindings, [&](std::string_view, std::string_view bytes) {
      auto r = storage::decode_binding(bytes);
      Vhost* vhost = r ? &add_vhost(r->vhost) : nullptr;
      if (!vhost) return;
      Binding b{Destination{r->to_queue, r->destination}, r->routing_key,
                wire::decode_table(r->arguments).value_or(FieldTable{}), HeadersMatch::all};
      vhost->restore_binding(r->source, std::move(b));
    });
    // Positions come from each queue's counters and its first and last keys: no scan.
    for (auto& q : recovered) {
      q->recover(view);
      q->touch();  // x-expires counts from the restart, as in RabbitMQ
    }
  }
  recover_delayed();
  writer_ = std::make_unique<storage::Writer>(*store_, [this] {
    // Coalesced: one catch-up on the loop applies every outcome finished by then.
    if (!catch_up_posted_.exchange(true))
      post([this] {
        catch_up_posted_ = false;
        catch_up();
      });
  });
  uint64_t marks = 0;
  {
    WriteBatch batch(*this);
    for (auto& q : recovered) q->add_delivered_marks_for_open(batch);
    marks = batch.id();
  }
  bool timed_out = false;
  return wait_durable(marks, std::chrono::steady_clock::time_point::max(), &timed_out);
}

// Messages waiting for a delayed retry are not ready after a restart either: their
// schedule entries say which they are (a short scan: only the waiting ones are read).
void Engine::recover_delayed() {
  storage::ReadView view(*store_);
  auto from = storage::schedule_key(storage::Timer::retry, 0, 0, 0);
  auto to = storage::schedule_key(storage::Timer::retry, UINT64_MAX, UINT64_MAX, UINT64_MAX);
  view.scan(Db::schedule, {from.data(), from.size()}, {to.data(), to.size()},
            [&](std::string_view key, std::string_view value) {
              auto e = storage::parse_schedule_key(key);
              auto q = find_queue_by_store_id(e.queue_id);
              // Transient messages did not survive; their entries go at the first round.
              if (q && value.size() == 9 && Db(value[0]) == Db::messages)
                q->recover_delayed(Queue::queue_seq(e.queue_id, e.seq), Db(value[0]),
                                   storage::get_be64(value.data() + 1));
              return true;
            });
  wake_at(0);  // one round at start: whatever fell due while the broker was down
}

uint64_t resident_memory() {
  // Resident minus file-backed: LMDB's map pages are the page cache, not the heap.
  std::ifstream statm("/proc/self/statm");
  uint64_t pages = 0, resident = 0, shared = 0;
  if (!(statm >> pages >> resident >> shared)) return 0;
  return (resident - std::min(resident, shared)) * uint64_t(sysconf(_SC_PAGESIZE));
}

// Sampled a few times a second, as RabbitMQ's memory monitor does; above the watermark
// publishers are blocked until memory falls under it again.
void Engine::watch_memory() {
  memory_timer_.expires_after(std::chrono::milliseconds(250));
  memory_timer_.async_wait([this, alive = std::weak_ptr<int>(alive_)](const asio::error_code& ec) {
    if (ec || alive.expired()) return;
    post([this] {
      if (shut_down_) return;
      uint64_t rss = resident_memory(), limit = options_.memory_high_watermark;
      if (rss > limit && !memory_alarm_)
        log::warning(
            "memory alarm: {} MB resident, above the {} MB watermark; publishers are blocked",
            rss >> 20, limit >> 20);
      else if (rss <= limit && memory_alarm_)
        log::info("memory alarm cleared: {} MB resident", rss >> 20);
      set_memory_alarm(rss > limit);
      watch_memory();
    });
  });
}

std::shared_ptr<Queue> Engine::find_queue_by_store_id(uint64_t store_id) const {
  auto q = find_queue(Queue::queue_id_of(store_id));
  return q && q->has_lane_of(store_id) ? q : nullptr;
}

std::shared_ptr<Queue> Engine::find_queue(uint64_t id) const {
  auto it = queues_by_id_.find(id);
  if (it == queues_by_id_.end()) return nullptr;
  auto q = it->second.lock();
  return q && !q->deleted ? q : nullptr;
}

void Engine::wake_at(uint64_t ms) {
  if (ms >= timer_at_) return;
  timer_at_ = ms;
  uint64_t now = now_ms();
  timer_.expires_after(std::chrono::milliseconds(ms > now ? ms - now : 0));
  timer_.async_wait([this, alive = std::weak_ptr<int>(alive_)](const asio::error_code& ec) {
    if (ec || alive.expired()) return;
    post([this] {
      timer_at_ = UINT64_MAX;
      on_timer();
    });
  });
}

void Engine::on_timer() {
  if (shut_down_) return;
  uint64_t next_unused = expire_unused_queues(now_ms());
  if (next_unused != UINT64_MAX) wake_at(next_unused);
  if (schedule_running_) return;
  schedule_running_ = true;
  // Once everything submitted is committed, the schedule holds every entry due by now and
  // none of what earlier rounds removed.
  when_durable(last_commit(), [this](const Status&) {
    schedule_running_ = false;
    if (uint64_t next = run_schedule(); next != UINT64_MAX) wake_at(next);
  });
}

uint64_t Engine::expire_unused_queues(uint64_t now) {
  uint64_t next = UINT64_MAX;
  std::vector<std::shared_ptr<Queue>> expired;
  for (auto& [vname, vhost] : vhosts_)
    for (auto& [qname, q] : vhost->queues) {
      if (!q->settings.expires) continue;
      if (q->unused_expired(now))
        expired.push_back(q);
      else if (q->consumers.empty())
        next = std::min(next, q->unused_deadline());
    }
  WriteBatch batch(*this);
  for (auto& q : expired)
    if (Vhost* v = find_vhost(q->vhost)) v->remove_queue(q, batch);
  return next;
}

uint64_t Engine::run_schedule() {
  // A round is one commit's worth: bounded, so publishers and consumers keep their turn.
  constexpr size_t kRound = 8192;
  const uint64_t now = now_ms();
  struct Due {
    storage::ScheduleEntry entry;
    std::string key;
    Db db;
  };
  std::vector<Due> due;
  uint64_t next = UINT64_MAX;
  {
    storage::ReadView view(*store_);
    for (auto kind : {storage::Timer::expiry, storage::Timer::retry}) {
      auto from = storage::schedule_key(kind, 0, 0, 0);
      auto to = storage::schedule_key(kind, UINT64_MAX, UINT64_MAX, UINT64_MAX);
      view.scan(Db::schedule, {from.data(), from.size()}, {to.data(), to.size()},
                [&](std::string_view key, std::string_view value) {
                  auto e = storage::parse_schedule_key(key);
                  if (e.time > now || due.size() >= kRound) {
                    next = std::min(next, due.size() >= kRound ? now : e.time);
                    return false;
                  }
                  due.push_back({e, std::string(key), value.empty() ? Db::messages : Db(value[0])});
                  return true;
                });
    }
  }
  WriteBatch batch(*this);
  for (const Due& d : due) {
    auto q = find_queue_by_store_id(d.entry.queue_id);
    if (!q) {
      batch.add(Op::del(Db::schedule, d.key));
      continue;
    }
    const uint64_t seq = Queue::queue_seq(d.entry.queue_id, d.entry.seq);
    if (d.entry.kind == storage::Timer::expiry)
      q->expiry_due(seq, d.db, now, d.key, batch);
    else
      q->retry_due(seq, d.key, batch);
  }
  return next;
}

namespace {
constexpr std::string_view kSettingPrefix = "setting:";
std::string setting_key(std::string_view key) {
  return std::string(kSettingPrefix) + std::string(key);
}
}  // namespace

CommitId Engine::put_setting(std::string_view key, std::string_view value) {
  WARREN_REQUIRE_LOOP(*token_);
  WriteBatch batch(*this);
  return batch.add(storage::Op::put(storage::Db::meta, setting_key(key), std::string(value)));
}

CommitId Engine::delete_setting(std::string_view key) {
  WARREN_REQUIRE_LOOP(*token_);
  WriteBatch batch(*this);
  return batch.add(storage::Op::del(storage::Db::meta, setting_key(key)));
}

std::vector<std::pair<std::string, std::string>> Engine::settings_with_prefix(
    std::string_view prefix) {
  WARREN_REQUIRE_LOOP(*token_);
  const std::string from = setting_key(prefix);
  // The first key past every key that starts with `from`: its last byte below 0xff, plus one.
  std::string to = from;
  while (!to.empty() && uint8_t(to.back()) == 0xff) to.pop_back();
  if (!to.empty()) to.back() = char(uint8_t(to.back()) + 1);
  std::vector<std::pair<std::string, std::string>> out;
  storage::ReadView view(*store_);
  view.scan(storage::Db::meta, from, to, [&](std::string_view key, std::string_view value) {
    out.emplace_back(key.substr(kSettingPrefix.size()), value);
    return true;
  });
  return out;
}

void Engine::post(std::function<void()> fn) {
  asio::post(io_, [alive = std::weak_ptr<int>(alive_), token = token_, fn = std::move(fn)] {
    std::lock_guard hold(*token);
    if (alive.lock()) fn();
  });
}

void Engine::catch_up() {
  WARREN_REQUIRE_LOOP(*token_);
  if (writer_->finished() <= committed_) return;
  apply_outcomes(writer_->outcomes_after(committed_));
}

void Engine::apply_outcomes(const storage::CommitOutcomes& outcomes) {
  committed_ = outcomes.through;
  const Status* no_space = nullptr;
  for (const auto& f : outcomes.failed)
    if (f.status.storage_fault() == StorageFault::no_space) no_space = &f.status;
  bool last_landed = outcomes.failed.empty() || outcomes.failed.back().last < outcomes.through;
  if (no_space) {
    space_freed_ = false;
    set_disk_alarm(true);
  } else if (last_landed && disk_alarm_ && space_freed_) {
    set_disk_alarm(false);
  }
  for (auto it = inflight_.begin(); it != inflight_.end();) {
    (*it)->on_commits(outcomes);
    it = (*it)->has_inflight_commits() ? std::next(it) : inflight_.erase(it);
  }
  std::erase_if(pending_done_, [&](const auto& entry) { return entry.second <= outcomes.through; });
  for (Channel* c : channels_) c->on_commits(outcomes);
  writer_->consumed(outcomes.through);
  if (!backlog_waiters_.empty() && !publish_backlog_full())
    for (auto& waiter : std::exchange(backlog_waiters_, {})) waiter();
  while (!durable_waiters_.empty() && durable_waiters_.begin()->first <= outcomes.through) {
    auto node = durable_waiters_.extract(durable_waiters_.begin());
    node.mapped()(writer_->outcome(node.key()));
  }
}

void Engine::when_durable(uint64_t id, std::function<void(const Status&)> fn) {
  WARREN_REQUIRE_LOOP(*token_);
  if (id <= committed_) {
    fn(id == 0 ? Status{} : writer_->outcome(id));
    return;
  }
  durable_waiters_.emplace(id, std::move(fn));
}

Status Engine::wait_durable(uint64_t id, std::chrono::steady_clock::time_point deadline,
                            bool* timed_out) const {
  *timed_out = false;
  if (id == 0) return {};
#if defined(WARREN_CHECK_THREADS) || !defined(NDEBUG)
  if (token_->held_here() && open_batch_.id != 0 && id >= open_batch_.id) {
    std::fprintf(stderr, "warren: waiting for commit %llu, which an open batch has yet to submit\n",
                 static_cast<unsigned long long>(id));
    std::abort();
  }
  if (storage::ReadView::views_open_here() > 0) {
    std::fprintf(stderr, "warren: waiting for a commit while holding a read view (lock order)\n");
    std::abort();
  }
#endif
  return writer_->wait_for(id, deadline, timed_out);
}

void Engine::submit_open_batch() {
  if (open_batch_.ops.empty()) return;
  uint64_t id = writer_->submit(std::move(open_batch_.ops));
  if (id != open_batch_.id) {
    // The ids recorded for this batch are wrong: a submit went around the open batch.
    std::fprintf(stderr, "warren: commit %llu submitted as %llu\n",
                 static_cast<unsigned long long>(open_batch_.id),
                 static_cast<unsigned long long>(id));
    std::abort();
  }
  open_batch_.ops.clear();
  open_batch_.id = 0;
}

void Engine::settle_everything() {
  WARREN_REQUIRE_LOOP(*token_);
  if (!writer_) return;
  bool timed_out = false;
  (void)wait_durable(last_commit(), std::chrono::steady_clock::time_point::max(), &timed_out);
  catch_up();
}

uint64_t Engine::add_alarm_listener(std::function<void(bool)> listener) {
  alarm_listeners_.emplace(next_listener_id_, std::move(listener));
  return next_listener_id_++;
}

void Engine::remove_alarm_listener(uint64_t id) { alarm_listeners_.erase(id); }

void Engine::set_disk_alarm(bool raised) {
  if (disk_alarm_ == raised) return;
  disk_alarm_ = raised;
  notify_alarm_listeners();
}

void Engine::set_memory_alarm(bool raised) {
  WARREN_REQUIRE_LOOP(*token_);
  if (memory_alarm_ == raised) return;
  memory_alarm_ = raised;
  notify_alarm_listeners();
}

void Engine::notify_alarm_listeners() {
  auto listeners = alarm_listeners_;  // a listener may remove itself
  for (auto& [id, listener] : listeners) listener(any_alarm());
}

std::string Engine::alarm_reason() const {
  if (disk_alarm_ && memory_alarm_) return "low on memory & low on disk";
  return memory_alarm_ ? "low on memory" : "low on disk";
}

bool Engine::publish_backlog_full() const {
  return writer_->backlog_bytes() > options_.broker.publish_backlog_limit;
}

void Engine::when_backlog_drains(std::function<void()> waiter) {
  if (!publish_backlog_full()) return waiter();
  backlog_waiters_.push_back(std::move(waiter));
}

namespace {

// RabbitMQ's cycle rule: a copy does not go back to a queue already in its x-death unless a
// consumer rejected it somewhere along the way since (that entry included).
bool is_dead_letter_cycle(const FieldTable* headers, std::string_view target) {
  const FieldValue* deaths = headers ? headers->find("x-death") : nullptr;
  const auto* list = deaths ? deaths->as<FieldArray>() : nullptr;
  if (!list) return false;
  for (const auto& d : *list) {
    const auto* entry = d.as<FieldTable>();
    if (!entry) continue;
    const FieldValue* reason = entry->find("reason");
    const FieldValue* queue = entry->find("queue");
    if (reason && reason->as<std::string>() && *reason->as<std::string>() == "rejected")
      return false;
    if (queue && queue->as<std::string>() && *queue->as<std::string>() == target) return true;
  }
  return false;
}

}  // namespace

void Engine::dead_letter(Queue& q, const storage::MessageData& original, std::string_view reason,
                         WriteBatch& batch) {
  Vhost* vhost = find_vhost(q.vhost);
  auto exchange = vhost && q.dead_letter ? vhost->find_exchange(q.dead_letter->exchange) : nullptr;
  if (!exchange) return;  // a dead-letter exchange that does not exist drops it
  ++counters.dead_lettered[std::string(reason)];
  DeadLettered copy = dead_letter_copy(original, q.name, reason, *q.dead_letter, now_ms() / 1000);
  const FieldTable* headers = copy.properties.headers ? &*copy.properties.headers : nullptr;
  std::vector<std::shared_ptr<Queue>> targets;
  for (const auto& key : copy.routing_keys) vhost->route(*exchange, key, headers, targets);
  if (reason != "rejected")
    std::erase_if(targets, [&](const auto& t) { return is_dead_letter_cycle(headers, t->name); });
  auto message = std::make_shared<const storage::MessageData>(std::move(copy.message));
  for (auto& target : targets) target->enqueue(message, batch);
}

std::string Engine::random_name(std::string_view prefix) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string name(prefix);
  for (int i = 0; i < 22; ++i) name.push_back(kAlphabet[rng_() % 64]);
  return name;
}

std::shared_ptr<Connection> Engine::connect(std::string name, std::string user,
                                            std::string_view vhost) {
  WARREN_REQUIRE_LOOP(*token_);
  Vhost* v = find_vhost(vhost);
  if (!v) return nullptr;
  auto c = std::make_shared<Connection>();
  c->id = next_connection_id_++;
  c->name = std::move(name);
  c->user = std::move(user);
  c->vhost = v;
  c->connected_at_ms = uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count());
  connections_.push_back(c);
  return c;
}

void Engine::disconnect(Connection& conn) {
  WARREN_REQUIRE_LOOP(*token_);
  if (conn.closed) return;
  conn.closed = true;
  WriteBatch batch(*this);  // everything the connection leaves behind, in one commit
  for (auto& weak : conn.channels)
    if (auto ch = weak.lock()) ch->close();
  conn.channels.clear();
  auto exclusive = std::move(conn.exclusive_queues);
  for (auto& q : exclusive) conn.vhost->remove_queue(q, batch);
  std::erase_if(connections_, [&](auto& c) { return c.get() == &conn; });
}

std::shared_ptr<Channel> Engine::open_channel(Connection& conn, uint16_t id, ChannelSink* sink) {
  WARREN_REQUIRE_LOOP(*token_);
  auto ch = std::make_shared<Channel>(*this, conn, id, sink);
  std::erase_if(conn.channels, [](auto& w) { return w.expired(); });
  conn.channels.push_back(ch);
  return ch;
}

std::vector<QueueInfo> Engine::list_queues() const {
  WARREN_REQUIRE_LOOP(*token_);
  std::vector<QueueInfo> out;
  for (const auto& [vname, vhost] : vhosts_)
    for (const auto& [qname, q] : vhost->queues)
      out.push_back(QueueInfo{vname, qname, q->durable, q->ready(), q->unacked(),
                              uint32_t(q->consumers.size()), q->delayed(), q->duplicates()});
  return out;
}

void Engine::shutdown() {
  if (shut_down_) return;
  WARREN_REQUIRE_LOOP(*token_);
  shut_down_ = true;
  timer_at_ = 0;  // no timer from now on: what it would start needs the writer
  timer_.cancel();
  memory_timer_.cancel();
  auto connections = connections_;
  for (auto& c : connections) disconnect(*c);
  if (!writer_) return;
  {
    // Exact marks on a clean close: only what really went out comes back redelivered.
    WriteBatch marks(*this);
    for (const auto& [vname, vhost] : vhosts_)
      for (const auto& [qname, q] : vhost->queues)
        if (q->durable && !q->exclusive) q->add_delivered_marks_for_close(marks);
  }
  writer_->stop();
}

}  // namespace warren::core
