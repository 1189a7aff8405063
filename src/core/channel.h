// A channel's state and rules: delivery tags (D7), unacknowledged deliveries, consumers and
// prefetch, publisher confirms. Every method runs on the event-loop thread. A method that
// fails closes the channel (or, for a hard error, asks for the connection to close) and
// reports it through ChannelSink::on_closed as well as in its return value.
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
#include "warren/consumer.h"
#include "warren/exchange.h"
#include "warren/queue.h"

namespace warren::core {

class Engine;
class Vhost;
struct Connection;

class Channel {
 public:
  Channel(Engine& engine, Connection& connection, uint16_t id, ChannelSink* sink);
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  uint16_t id() const { return id_; }
  bool is_open() const { return open_; }
  const Status& close_reason() const { return close_reason_; }
  // Set when the last method wrote durable definitions; its commit makes them safe.
  bool wrote_durably() const { return wrote_durably_; }

  Result<QueueDeclareOk> queue_declare(std::string_view queue, const QueueOptions& options);
  Status queue_bind(std::string_view queue, std::string_view exchange, std::string_view key,
                    const FieldTable& args);
  Status queue_unbind(std::string_view queue, std::string_view exchange, std::string_view key,
                      const FieldTable& args);
  Result<uint32_t> queue_purge(std::string_view queue);
  Result<uint32_t> queue_delete(std::string_view queue, const QueueDeleteOptions& options);
  Status exchange_declare(std::string_view exchange, std::string_view type,
                          const ExchangeOptions& options);
  Status exchange_delete(std::string_view exchange, bool if_unused);
  Status exchange_bind(std::string_view destination, std::string_view source, std::string_view key,
                       const FieldTable& args);
  Status exchange_unbind(std::string_view destination, std::string_view source,
                         std::string_view key, const FieldTable& args);

  Status confirm_select();
  bool confirm_mode() const { return confirm_mode_; }

  // Transactions: publishes and acknowledgements wait for tx_commit; tx_rollback drops
  // the publishes and leaves the acknowledged deliveries unacknowledged again.
  Status tx_select();
  Status tx_commit();
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
  // returns that commit's batch. Not on a transactional channel (its ack would wait).
  Result<uint64_t> ack_done(uint64_t tag, std::string_view key);

  // The client closes the channel: unacked messages are requeued, consumers cancelled,
  // pending confirms dropped.
  void close();

  // --- for queues and the engine ---------------------------------------------------
  bool can_deliver(const Consumer& consumer) const;
  void deliver(const std::shared_ptr<Consumer>& consumer, Queue& queue, Taken taken);
  void consumer_cancelled_by_broker(Consumer& consumer);
  void on_batch_done(uint64_t batch, bool ok);
  // The sink can take deliveries again.
  void resume_deliveries() { kick_consumers(); }

 private:
  struct Unacked {
    std::shared_ptr<Queue> queue;
    std::shared_ptr<Consumer> consumer;  // null for basic.get
    Queue::Delivered delivery;
  };
  struct PendingConfirm {
    uint64_t seq;
    uint64_t batch;  // 0: nothing to wait for
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
  template <class F>
  auto declare(F&& method) -> decltype(method());
  Status check_open() const;
  Vhost& vhost();
  Status settle(uint64_t tag, bool multiple, Settle how, MethodId m);
  void settle_one(Unacked& u, Settle how);
  void requeue_all_unacked();
  void cancel_all_consumers();
  void release_confirms();
  void kick_consumers();
  Status publish_now(PublishInput input);
  Status publish_checks(const PublishInput& in, std::shared_ptr<class Exchange>* exchange,
                        uint64_t* expires_at);
  DeliveryInfo delivery_info(uint64_t tag, const Queue& q, Taken& t, std::string consumer_tag,
                             bool is_get);
  void route(const class Exchange& exchange, const PublishInput& in, bool* strip_bcc);

  Engine& engine_;
  Connection& connection_;
  const uint16_t id_;
  ChannelSink* sink_;
  bool open_ = true;
  Status close_reason_;
  bool wrote_durably_ = false;

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
  std::vector<std::shared_ptr<Queue>> targets_;  // scratch for routing, reused
};

}  // namespace warren::core
