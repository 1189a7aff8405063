// A channel's state and rules: delivery tags (D7), unacknowledged deliveries, consumers and
// prefetch, publisher confirms. Every method runs with the broker's loop token held. A
// method that fails closes the channel (or, for a hard error, asks for the connection to
// close) and reports it through ChannelSink::on_closed as well as in its return value.
//
// A method that writes returns the commit that makes its effect durable (core/types.h),
// and the channel alone decides when a publish is confirmed: the in-process API and the
// AMQP server both wait on those and keep no bookkeeping of their own.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "core/errors.h"
#include "core/queue.h"
#include "core/types.h"
#include "core/users.h"
#include "warren/consumer.h"
#include "warren/exchange.h"
#include "warren/queue.h"

namespace warren::core {

class Engine;
class Vhost;
class Exchange;
struct Connection;

// Direct reply-to: the pseudo-queue a requester consumes, and the prefix of the names a
// publish's reply_to is rewritten to.
inline constexpr std::string_view kReplyTo = "amq.rabbitmq.reply-to";
inline constexpr std::string_view kReplyToPrefix = "amq.rabbitmq.reply-to.";

class Channel {
 public:
  Channel(Engine& engine, Connection& connection, uint16_t id, ChannelSink* sink);
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  uint16_t id() const { return id_; }
  const Connection& connection() const { return connection_; }
  bool is_open() const { return open_; }
  const Status& close_reason() const { return close_reason_; }
  // The commit that carries everything this channel has done so far (flush waits for it).
  CommitId last_commit() const { return last_commit_; }

  Result<Committed<QueueDeclareOk>> queue_declare(std::string_view queue,
                                                  const QueueOptions& options);
  Result<CommitId> queue_bind(std::string_view queue, std::string_view exchange,
                              std::string_view key, const FieldTable& args);
  Result<CommitId> queue_unbind(std::string_view queue, std::string_view exchange,
                                std::string_view key, const FieldTable& args);
  Result<Committed<uint32_t>> queue_purge(std::string_view queue);
  Result<Committed<uint32_t>> queue_delete(std::string_view queue,
                                           const QueueDeleteOptions& options);
  Result<CommitId> exchange_declare(std::string_view exchange, std::string_view type,
                                    const ExchangeOptions& options);
  Result<CommitId> exchange_delete(std::string_view exchange, bool if_unused);
  Result<CommitId> exchange_bind(std::string_view destination, std::string_view source,
                                 std::string_view key, const FieldTable& args);
  Result<CommitId> exchange_unbind(std::string_view destination, std::string_view source,
                                   std::string_view key, const FieldTable& args);

  Status confirm_select();
  bool confirm_mode() const { return confirm_mode_; }
  // What the management API shows of a channel, in RabbitMQ's terms.
  struct Stats {
    uint16_t prefetch_count = 0, global_prefetch_count = 0;
    size_t consumers = 0, unacked = 0, unconfirmed = 0;
    bool transactional = false;
    size_t uncommitted_publishes = 0, uncommitted_acks = 0;
  };
  Stats stats() const {
    return {consumer_prefetch_,  channel_prefetch_, consumers_.size(),    unacked_.size(),
            unconfirmed_.size(), tx_mode_,          tx_publishes_.size(), tx_settles_.size()};
  }
  // For a caller that waits for confirms: the last publish so far, and the commit whose
  // outcome settles it and every publish before it.
  struct ConfirmTarget {
    uint64_t seq = 0;
    CommitId commit = 0;
  };
  ConfirmTarget confirm_target() const;
  // Whether every publish up to `seq` is settled; if so, also whether any publish settled
  // since the last such answer was nacked (and that is then forgotten).
  struct ConfirmOutcome {
    bool settled = false;
    bool nacked = false;
  };
  ConfirmOutcome take_confirm_outcome(uint64_t seq);

  // Transactions: publishes and acknowledgements wait for tx_commit, which applies them all
  // in one commit; tx_rollback drops the publishes and leaves the acknowledged deliveries
  // unacknowledged again.
  Status tx_select();
  Result<CommitId> tx_commit();
  Status tx_rollback();
  Status basic_publish(PublishInput input);

  Status basic_qos(uint16_t prefetch_count, bool global);
  Result<std::optional<DeliveryInfo>> basic_get(std::string_view queue, bool no_ack);
  Result<std::string> basic_consume(std::string_view queue, const ConsumeOptions& options);
  Status basic_cancel(std::string_view consumer_tag);
  Status basic_ack(uint64_t tag, bool multiple);
  Status basic_nack(uint64_t tag, bool multiple, bool requeue);
  Status basic_reject(uint64_t tag, bool requeue);
  Status basic_recover(bool requeue);
  // Acknowledges `tag` and records the idempotency key `key` as done, in one commit;
  // returns that commit. Not on a transactional channel (its ack would wait).
  Result<CommitId> ack_done(uint64_t tag, std::string_view key);

  // The client closes the channel: unacked messages are requeued, consumers cancelled,
  // pending confirms dropped.
  void close();
  // A commit a reply of this channel waited for failed: the channel closes with that reason.
  void close_for_failure(const Status& status) { fail(status); }

  // --- for queues and the engine ---------------------------------------------------
  bool can_deliver(const Consumer& consumer) const;
  void deliver(const std::shared_ptr<Consumer>& consumer, Queue& queue, Taken taken,
               WriteBatch& batch);
  void consumer_cancelled_by_broker(Consumer& consumer);
  void on_commits(const storage::CommitOutcomes& outcomes);
  // The sink can take deliveries again.
  void resume_deliveries() { kick_consumers(); }
  // Direct reply-to: a reply for this channel's reply consumer, delivered as it is.
  void deliver_reply(MessagePtr message);

 private:
  struct Unacked {
    std::shared_ptr<Queue> queue;
    std::shared_ptr<Consumer> consumer;  // null for basic.get
    Queue::Delivered delivery;
  };
  struct PendingConfirm {
    uint64_t seq;
    CommitId commit;  // 0: nothing to wait for
    bool nack;
  };
  // requeue: the consumer sent it back (nack/reject); release: it came back because the
  // channel closed or recovered.
  enum class Settle { ack, requeue, release, drop };
  struct PendingSettle {
    Unacked delivery;
    uint64_t tag;
    Settle how;
  };

  Status fail(Status status);
  // Exchanges this channel may publish to, as last checked (publishes check each time).
  struct PublishPermit {
    uint64_t generation = 0;
    std::vector<std::pair<std::string, bool>> answers;
  } publish_permits_;
  template <class F>
  auto declare(F&& method);
  Status check_open() const;
  // RabbitMQ's permission check for the connection's user (in-process connections, which
  // have none, may do anything): 403 with RabbitMQ's text if refused.
  Status permit(Access access, std::string_view kind, std::string_view name, MethodId m);
  Status permit_publish(std::string_view exchange);
  Status permit_declare_queue(std::string_view name, const QueueOptions& o);
  Status guarded(Access access, std::string_view kind, std::string_view name, MethodId m);
  Status permit_binding(std::string_view kind, std::string_view destination,
                        std::string_view source, std::string_view key, MethodId m);
  Status permit_topic(const Exchange& exchange, Access access, std::string_view routing_key,
                      MethodId m);
  Vhost& vhost();
  void note_commit(CommitId commit) { last_commit_ = std::max(last_commit_, commit); }
  Status settle(uint64_t tag, bool multiple, Settle how, MethodId m);
  void settle_one(Unacked& u, Settle how, WriteBatch& batch);
  void requeue_all_unacked(WriteBatch& batch);
  void cancel_all_consumers(WriteBatch& batch);
  void release_confirms();
  void kick_consumers();
  Status publish_now(PublishInput input, WriteBatch& batch);
  Status publish_checks(const PublishInput& in, std::shared_ptr<class Exchange>* exchange,
                        uint64_t* expires_at);
  DeliveryInfo delivery_info(uint64_t tag, Queue& q, Taken& t, std::string consumer_tag,
                             bool is_get);
  void route(const class Exchange& exchange, const PublishInput& in, bool* strip_bcc);
  Result<std::string> consume_replies(std::string tag, const ConsumeOptions& o);
  void stop_consuming_replies();
  // The channel a publish to "amq.rabbitmq.reply-to.<token>" reaches; null if none.
  Channel* reply_target(const PublishInput& in) const;

  Engine& engine_;
  Connection& connection_;
  const uint16_t id_;
  ChannelSink* sink_;
  bool open_ = true;
  Status close_reason_;
  CommitId last_commit_ = 0;

  uint64_t next_tag_ = 1;
  std::map<uint64_t, Unacked> unacked_;
  std::map<std::string, std::shared_ptr<Consumer>, std::less<>> consumers_;
  uint16_t consumer_prefetch_ = 0;  // for consumers created from now on
  uint16_t channel_prefetch_ = 0;   // global=true: all unacked on the channel

  bool confirm_mode_ = false;
  bool tx_mode_ = false;
  std::vector<PublishInput> tx_publishes_;
  std::vector<PendingSettle> tx_settles_;
  uint64_t next_publish_seq_ = 1;
  std::deque<PendingConfirm> unconfirmed_;
  CommitId unconfirmed_commit_ = 0;  // the highest commit an unconfirmed publish waits for
  bool nacked_since_answer_ = false;
  std::vector<std::shared_ptr<Queue>> targets_;  // scratch for routing, reused
  // Direct reply-to: the pseudo-queue's consumer on this channel and the token that names it.
  std::optional<std::string> reply_consumer_;
  std::string reply_token_;
};

}  // namespace warren::core
