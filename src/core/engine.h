// The broker engine: vhosts, connections and channels over one store. It lives on one
// event-loop thread (an Asio io_context) and needs no locks; the storage writer runs on
// its own thread and reports each commit back to the loop.
#pragma once

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/result.h"
#include "core/channel.h"
#include "core/loop_token.h"
#include "core/users.h"
#include "core/vhost.h"
#include "core/write_batch.h"
#include "storage/store.h"
#include "storage/writer.h"
#include "warren/options.h"
#include "warren/queue.h"

namespace warren::core {

// What a protocol adapter tells of its client, for the management API (RabbitMQ's fields).
struct ConnectionDetails {
  std::string peer_host, host;  // the client's address and ours
  uint16_t peer_port = 0, port = 0;
  bool tls = false;
  std::string auth_mechanism;
  FieldTable client_properties;
  uint16_t channel_max = 0, heartbeat = 0;
  uint32_t frame_max = 0;
};

struct Connection {
  uint64_t id = 0;
  std::string name;
  uint64_t connected_at_ms = 0;  // since the epoch
  ConnectionDetails details = {};
  std::string user;  // empty: in-process, no user-id check
  Vhost* vhost = nullptr;
  std::vector<std::weak_ptr<Channel>> channels;
  std::vector<std::shared_ptr<Queue>> exclusive_queues;
  bool closed = false;
  // Closes the client's connection with `reason` (320 CONNECTION_FORCED): set by the
  // protocol adapter that owns it; the management API's DELETE /api/connections uses it.
  std::function<void(const std::string& reason)> force_close = {};
};

struct EngineOptions {
  BrokerOptions broker;
  std::shared_ptr<storage::FaultInjector> faults = {};  // tests only
  std::vector<std::string> vhosts = {};                 // besides "/"
  // Above this resident memory the memory alarm is raised (RabbitMQ's
  // vm_memory_high_watermark); 0: memory is not watched.
  uint64_t memory_high_watermark = 0;
};

// The process's anonymous resident memory (heap and stacks), in bytes; 0 if unknown.
uint64_t resident_memory();

class Engine {
 public:
  // Opens the store and recovers it. Call on the loop thread, or before the loop runs.
  static Result<std::unique_ptr<Engine>> open(asio::io_context& io, const EngineOptions& options);
  ~Engine();  // shutdown() if not done yet

  // Closes every connection, records exact delivered marks, writes everything pending
  // and stops the writer. Loop thread. Call settle_everything() first for a graceful stop.
  void shutdown();
  // Waits until everything submitted so far has landed (or failed) and applies the
  // outcomes, so every confirm that can be sent is sent. Loop thread; blocks it.
  void settle_everything();

  std::shared_ptr<Connection> connect(std::string name, std::string user = {},
                                      std::string_view vhost = "/");
  void disconnect(Connection& connection);
  std::shared_ptr<Channel> open_channel(Connection& connection, uint16_t id, ChannelSink* sink);

  Vhost* find_vhost(std::string_view name);
  // Adds a vhost with the default exchanges (no-op if it exists).
  Vhost& add_vhost(std::string_view name);
  // Adds a vhost and stores it, so that it exists after a restart even while it holds
  // nothing durable (an operator created it). The commit that stores it.
  CommitId create_vhost(std::string_view name);

  // The users (core/users.h). Changes through store_user / delete_user are stored.
  const Users& users() const { return users_; }
  CommitId store_user(User user);
  // 0 if there was no such user.
  CommitId delete_user(std::string_view name);
  // A broker with no users has guest/guest (an administrator, on every vhost, as before
  // users could be managed); it is stored with the first user added. drop_default_user
  // removes it (warrend's configured users replace it).
  void drop_default_user();
  // Deletes a vhost with everything in it: its AMQP connections are closed (320) first.
  // Refused while an in-process connection uses it. Returns the commit that removes it.
  Result<CommitId> delete_vhost(std::string_view name);
  std::vector<QueueInfo> list_queues() const;
  // Counts since start, broker-wide, named as RabbitMQ's Prometheus plugin names them
  // (rabbitmq_global_messages_<name>_total). Loop thread.
  struct Counters {
    uint64_t received = 0;          // publishes
    uint64_t received_confirm = 0;  // publishes on channels in confirm mode
    uint64_t confirmed = 0;         // publishes confirmed (acked) to their publisher
    uint64_t routed = 0;
    uint64_t unroutable_dropped = 0;
    uint64_t unroutable_returned = 0;
    uint64_t delivered = 0;  // deliveries and gets
    uint64_t redelivered = 0;
    uint64_t acknowledged = 0;
    uint64_t get_empty = 0;
    uint64_t expired = 0;  // Warren's: messages whose TTL ran out
    std::map<std::string, uint64_t, std::less<>> dead_lettered;  // by reason
  } counters;
  // For the management API (loop thread).
  const std::map<std::string, std::unique_ptr<Vhost>, std::less<>>& vhosts() const {
    return vhosts_;
  }
  const std::vector<std::shared_ptr<Connection>>& connections() const { return connections_; }

  // Moves (or copies) up to `max` ready messages of `from`, oldest first, into `to`, or
  // with `to` empty into the queue named by each message's newest x-death entry. Each
  // round of moves is one commit. Returns how many, and the commit that makes them durable.
  struct Replayed {
    uint64_t count = 0;
    uint64_t commit = 0;
    Status stopped;  // why it stopped early (a queue named in x-death does not exist)
  };
  Result<Replayed> replay(std::string_view vhost, std::string_view from, std::string_view to,
                          uint64_t max, bool copy);
  // Consumer-side idempotency keys (Channel::ack_done records them). While a change to the
  // key is in flight, `pending` is the commit to wait for before asking again.
  struct DoneAnswer {
    bool done = false;
    uint64_t pending = 0;
  };
  DoneAnswer is_done(std::string_view key);
  // Records the key as done in `batch` (with an ack, by Channel::ack_done).
  void mark_done(std::string_view key, WriteBatch& batch);
  uint64_t forget_done(std::string_view key);

  // Durable settings of the layers above (shovel definitions), kept in the store's meta
  // database under "setting:" + key. Loop thread. put/delete return the commit that holds them.
  CommitId put_setting(std::string_view key, std::string_view value);
  CommitId delete_setting(std::string_view key);
  std::vector<std::pair<std::string, std::string>> settings_with_prefix(std::string_view prefix);

  storage::Store& store() { return *store_; }
  storage::Writer& writer() { return *writer_; }
  const BrokerOptions& options() const { return options_.broker; }
  uint64_t memory_high_watermark() const { return options_.memory_high_watermark; }
  std::chrono::steady_clock::time_point started() const { return started_; }
  asio::io_context& io() { return io_; }
  // Runs fn on the loop later, holding the token, unless the engine is gone by then.
  void post(std::function<void()> fn);
  // Held by whichever thread runs core code; see loop_token.h.
  const std::shared_ptr<LoopToken>& token() const { return token_; }

  // --- commits: the one authority on "durable" ------------------------------------
  // Every core operation that writes puts its ops in a WriteBatch (core/write_batch.h) and
  // returns the id of the commit that carries them (0: nothing to wait for). Whether that
  // commit landed is known here, and only here:
  //
  // Runs fn on the loop once commit `id` has landed or failed, with its outcome; at once if
  // it already has. Loop thread.
  void when_durable(uint64_t id, std::function<void(const Status&)> fn);
  // Blocks the calling thread until commit `id` has landed or failed and returns its
  // outcome. Any thread (the writer needs no other); `*timed_out` past the deadline.
  // Applying the outcome's consequences (confirms, tail entries) is catch_up's job.
  Status wait_durable(uint64_t id, std::chrono::steady_clock::time_point deadline,
                      bool* timed_out) const;
  // Applies the outcomes of every commit the writer has finished. The loop does this by
  // itself soon after each commit; a caller holding the token that has just waited with
  // wait_durable calls it to see the consequences at once.
  void catch_up();
  // The last commit whose outcome has been applied.
  uint64_t committed() const { return committed_; }
  // The last commit submitted (what a flush of everything waits for).
  uint64_t last_commit() const { return writer_->last_submitted(); }
  OpenBatch& open_batch() { return open_batch_; }
  void submit_open_batch();

  // Alarms, as RabbitMQ's: publishing connections are blocked while one is raised.
  // The disk alarm is raised when a commit had to refuse messages for lack of space and
  // cleared by a later commit once acknowledgements have freed some; the memory alarm by
  // whoever watches the process's memory (the server samples it). Listeners hear whether
  // any alarm is raised after each change.
  bool disk_alarm() const { return disk_alarm_; }
  bool memory_alarm() const { return memory_alarm_; }
  bool any_alarm() const { return disk_alarm_ || memory_alarm_; }
  // What connection.blocked says: "low on disk", "low on memory", or both joined by " & ".
  std::string alarm_reason() const;
  void set_memory_alarm(bool raised);
  uint64_t add_alarm_listener(std::function<void(bool raised)> listener);
  void remove_alarm_listener(uint64_t id);
  void note_space_freed() { space_freed_ = true; }

  // Publisher flow control: while the bytes waiting for the writer exceed the publish
  // backlog limit, the server reads nothing more from publishing connections (RabbitMQ's
  // credit flow does the same). The waiter runs once the backlog is under the limit again.
  bool publish_backlog_full() const;
  void when_backlog_drains(std::function<void()> waiter);

  // --- for queues and channels -----------------------------------------------------
  // Routes the dead-lettered copy of `original`, a message leaving q for `reason`, through
  // q's dead-letter exchange. The caller removes the original in the same batch.
  void dead_letter(Queue& q, const storage::MessageData& original, std::string_view reason,
                   WriteBatch& batch);
  // The timer fires no later than `ms` (wall clock): expiries, retries, x-expires.
  void wake_at(uint64_t ms);
  std::shared_ptr<Queue> find_queue(uint64_t id) const;
  // The queue a store id (a lane of it: core/queue.h) belongs to.
  std::shared_ptr<Queue> find_queue_by_store_id(uint64_t store_id) const;
  void register_queue(const std::shared_ptr<Queue>& q) { queues_by_id_[q->id] = q; }
  void unregister_queue(uint64_t id) { queues_by_id_.erase(id); }
  uint64_t allocate_queue_id() { return next_queue_id_++; }
  std::string random_name(std::string_view prefix);
  void track_inflight(std::shared_ptr<Queue> queue) { inflight_.insert(std::move(queue)); }
  void register_channel(Channel* c) { channels_.insert(c); }
  // Direct reply-to: the channel whose reply consumer a token names.
  void register_reply_token(const std::string& token, Channel* c) { reply_channels_[token] = c; }
  void unregister_reply_token(const std::string& token) { reply_channels_.erase(token); }
  Channel* reply_channel(std::string_view token) const {
    auto it = reply_channels_.find(token);
    return it == reply_channels_.end() ? nullptr : it->second;
  }
  void unregister_channel(Channel* c) { channels_.erase(c); }

 private:
  Engine(asio::io_context& io, EngineOptions options, std::unique_ptr<storage::Store> store);
  Status recover();
  void recover_settings(storage::ReadView& view);
  void recover_delayed();
  void apply_outcomes(const storage::CommitOutcomes& outcomes);
  void on_timer();
  // Handles what is due in the schedule database, a bounded number per round; returns when
  // the next entry is due (UINT64_MAX: none).
  uint64_t run_schedule();
  uint64_t expire_unused_queues(uint64_t now);
  void watch_memory();

  asio::io_context& io_;
  EngineOptions options_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::unique_ptr<storage::Store> store_;
  Users users_;
  bool default_user_ = false;  // users_ holds only the unstored guest
  std::unique_ptr<storage::Writer> writer_;
  std::map<std::string, std::unique_ptr<Vhost>, std::less<>> vhosts_;
  std::vector<std::shared_ptr<Connection>> connections_;
  std::unordered_set<Channel*> channels_;
  std::map<std::string, Channel*, std::less<>> reply_channels_;
  std::set<std::shared_ptr<Queue>> inflight_;  // queues with uncommitted messages
  std::unordered_map<uint64_t, std::weak_ptr<Queue>> queues_by_id_;
  asio::steady_timer timer_;
  asio::steady_timer memory_timer_;
  uint64_t timer_at_ = UINT64_MAX;  // when timer_ fires (wall-clock ms)
  bool schedule_running_ = false;
  uint64_t committed_ = 0;
  uint64_t next_queue_id_ = 1;
  uint64_t next_connection_id_ = 1;
  std::mt19937_64 rng_;
  bool shut_down_ = false;
  bool disk_alarm_ = false;
  bool memory_alarm_ = false;
  std::vector<std::function<void()>> backlog_waiters_;
  void notify_alarm_listeners();
  bool space_freed_ = false;
  std::map<uint64_t, std::function<void(bool)>> alarm_listeners_;
  uint64_t next_listener_id_ = 1;
  void set_disk_alarm(bool raised);
  // Handlers posted to the loop hold a weak reference: they may run after the engine ends.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  std::multimap<uint64_t, std::function<void(const Status&)>> durable_waiters_;
  std::atomic<bool> catch_up_posted_{false};
  OpenBatch open_batch_;
  // Idempotency keys whose change is in flight: digest -> the commit carrying it.
  std::unordered_map<std::string, uint64_t> pending_done_;
  std::shared_ptr<LoopToken> token_ = std::make_shared<LoopToken>();
};

}  // namespace warren::core
