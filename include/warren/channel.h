// A channel: the verbs of a RabbitMQ channel, in-process.
//
// Methods that RabbitMQ answers synchronously (declare, bind, get, consume, ...) return
// when the broker has answered; a declaration of something durable returns once it is on
// disk. basic_publish and the acknowledgements are asynchronous, as on the wire: an error
// they cause (a missing exchange, an unknown delivery tag) closes the channel, and the next
// call on it throws that warren::Error. A channel error closes only this channel.
// A Channel may be used from any thread, but not from two threads at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "warren/consumer.h"
#include "warren/exchange.h"
#include "warren/export.h"
#include "warren/message.h"
#include "warren/queue.h"
#include "warren/status.h"

namespace warren {

namespace api {
class ChannelHandle;
}

class WARREN_EXPORT Channel {
 public:
  explicit Channel(std::shared_ptr<api::ChannelHandle> handle);
  Channel(Channel&&) noexcept;
  Channel& operator=(Channel&&) noexcept;
  ~Channel();  // closes the channel; its unacknowledged messages are requeued

  // --- exchanges ---------------------------------------------------------------------
  // type: "direct", "fanout", "topic" or "headers".
  void exchange_declare(std::string_view exchange, std::string_view type,
                        const ExchangeOptions& options = {});
  void exchange_delete(std::string_view exchange, const ExchangeDeleteOptions& options = {});
  void exchange_bind(std::string_view destination, std::string_view source,
                     std::string_view routing_key, const FieldTable& arguments = {});
  void exchange_unbind(std::string_view destination, std::string_view source,
                       std::string_view routing_key, const FieldTable& arguments = {});

  // --- queues ------------------------------------------------------------------------
  QueueDeclareOk queue_declare(std::string_view queue, const QueueOptions& options = {});
  void queue_bind(std::string_view queue, std::string_view exchange, std::string_view routing_key,
                  const FieldTable& arguments = {});
  void queue_unbind(std::string_view queue, std::string_view exchange, std::string_view routing_key,
                    const FieldTable& arguments = {});
  // Removes the ready messages; returns how many. Unacknowledged ones stay.
  uint32_t queue_purge(std::string_view queue);
  // Returns the number of ready messages deleted with the queue.
  uint32_t queue_delete(std::string_view queue, const QueueDeleteOptions& options = {});

  // --- publishing --------------------------------------------------------------------
  // Puts the channel in confirm mode: every later publish gets a sequence number (from 1)
  // and is confirmed (ack) once every queue it reached has it safely, or refused (nack).
  // A persistent message in a durable queue is confirmed only after its fsynced commit.
  void confirm_select();
  // Returns the publish sequence number in confirm mode, else 0. Holds the caller back
  // while the broker's write backlog is full.
  uint64_t basic_publish(std::string_view exchange, std::string_view routing_key, Message message,
                         const PublishOptions& options = {});
  // Waits until every publish so far is confirmed. Returns false if any was nacked since
  // the last wait; throws warren::Timeout past the deadline.
  bool wait_for_confirms(std::chrono::milliseconds timeout);
  void on_confirm(ConfirmCallback callback);
  void on_return(ReturnCallback callback);

  // Transactions: after tx_select, publishes and acknowledgements take effect only at
  // tx_commit (which returns once they are on disk); tx_rollback discards the publishes and
  // leaves acknowledged deliveries unacknowledged. A channel is in tx or confirm mode,
  // never both (406).
  void tx_select();
  void tx_commit();
  void tx_rollback();

  // --- consuming ---------------------------------------------------------------------
  // prefetch_count 0 = unlimited. global=false limits each consumer created afterwards;
  // global=true limits the channel as a whole (RabbitMQ's semantics).
  void basic_qos(uint16_t prefetch_count, bool global = false);
  std::optional<Delivery> basic_get(std::string_view queue, bool no_ack = false);
  // Returns the consumer tag.
  std::string basic_consume(std::string_view queue, DeliveryCallback callback,
                            ConsumeOptions options = {});
  void basic_cancel(std::string_view consumer_tag);
  void basic_ack(uint64_t delivery_tag, bool multiple = false);
  void basic_nack(uint64_t delivery_tag, bool multiple = false, bool requeue = true);
  void basic_reject(uint64_t delivery_tag, bool requeue = true);
  // Requeues every unacknowledged message of this channel (they are redelivered with new
  // tags). requeue=false is refused with 540 NOT_IMPLEMENTED, as RabbitMQ does.
  void basic_recover(bool requeue = true);

  // --- consumer-side idempotency -----------------------------------------------------
  // Acknowledges the delivery and records `key` as done in the same commit; returns once
  // that commit is on disk. A consumer that crashed after its work but before this call
  // gets the message again and finds is_done(key) false: the work was not recorded (make
  // the work itself idempotent or transactional with this key). After it, a redelivery or
  // a duplicate finds is_done(key) true and can simply be acknowledged. Keys stay until
  // forget_done. Refused (406) on a transactional channel.
  void ack_done(uint64_t delivery_tag, std::string_view key);
  bool is_done(std::string_view key);
  void forget_done(std::string_view key);

  // --- lifetime ----------------------------------------------------------------------
  // Waits until everything this channel did so far (acks included) is on disk.
  void flush(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  void close();
  bool is_open() const;
  // Why the broker closed the channel; ok() while it is open or after close().
  Status close_reason() const;
  uint16_t id() const;

 private:
  std::shared_ptr<api::ChannelHandle> handle_;
};

}  // namespace warren
