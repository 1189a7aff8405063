// The methods of AMQP 0-9-1 (with RabbitMQ's extensions) as plain structs. Each struct's
// `fields` lists its members in wire order; the member's type gives the wire type:
// uint8_t octet, uint16_t short, uint32_t long, uint64_t longlong, std::string shortstr,
// LongStr longstr, bool bit (consecutive bits share an octet), FieldTable table.
// codec.h encodes and decodes any of them from that list alone.
#pragma once

#include <cstdint>
#include <string>
#include <tuple>
#include <variant>

#include "warren/field_table.h"

namespace warren::amqp {

struct LongStr {
  std::string value;
  bool operator==(const LongStr&) const = default;
};

#define WARREN_AMQP_METHOD(Name, ClassId, MethodId)    \
  static constexpr uint16_t class_id = ClassId;        \
  static constexpr uint16_t method_id = MethodId;      \
  static constexpr const char* name = Name;

#define WARREN_FIELDS(...) \
  static constexpr auto fields() { return std::make_tuple(__VA_ARGS__); }

// ---- connection -------------------------------------------------------------------------
struct ConnectionStart {
  WARREN_AMQP_METHOD("connection.start", 10, 10)
  uint8_t version_major = 0, version_minor = 9;
  FieldTable server_properties;
  LongStr mechanisms, locales;
  WARREN_FIELDS(&ConnectionStart::version_major, &ConnectionStart::version_minor,
                &ConnectionStart::server_properties, &ConnectionStart::mechanisms,
                &ConnectionStart::locales)
};
struct ConnectionStartOk {
  WARREN_AMQP_METHOD("connection.start-ok", 10, 11)
  FieldTable client_properties;
  std::string mechanism;
  LongStr response;
  std::string locale;
  WARREN_FIELDS(&ConnectionStartOk::client_properties, &ConnectionStartOk::mechanism,
                &ConnectionStartOk::response, &ConnectionStartOk::locale)
};
struct ConnectionSecure {
  WARREN_AMQP_METHOD("connection.secure", 10, 20)
  LongStr challenge;
  WARREN_FIELDS(&ConnectionSecure::challenge)
};
struct ConnectionSecureOk {
  WARREN_AMQP_METHOD("connection.secure-ok", 10, 21)
  LongStr response;
  WARREN_FIELDS(&ConnectionSecureOk::response)
};
struct ConnectionTune {
  WARREN_AMQP_METHOD("connection.tune", 10, 30)
  uint16_t channel_max = 0;
  uint32_t frame_max = 0;
  uint16_t heartbeat = 0;
  WARREN_FIELDS(&ConnectionTune::channel_max, &ConnectionTune::frame_max, &ConnectionTune::heartbeat)
};
struct ConnectionTuneOk {
  WARREN_AMQP_METHOD("connection.tune-ok", 10, 31)
  uint16_t channel_max = 0;
  uint32_t frame_max = 0;
  uint16_t heartbeat = 0;
  WARREN_FIELDS(&ConnectionTuneOk::channel_max, &ConnectionTuneOk::frame_max,
                &ConnectionTuneOk::heartbeat)
};
struct ConnectionOpen {
  WARREN_AMQP_METHOD("connection.open", 10, 40)
  std::string virtual_host, reserved_1;
  bool reserved_2 = false;
  WARREN_FIELDS(&ConnectionOpen::virtual_host, &ConnectionOpen::reserved_1, &ConnectionOpen::reserved_2)
};
struct ConnectionOpenOk {
  WARREN_AMQP_METHOD("connection.open-ok", 10, 41)
  std::string reserved_1;
  WARREN_FIELDS(&ConnectionOpenOk::reserved_1)
};
struct ConnectionClose {
  WARREN_AMQP_METHOD("connection.close", 10, 50)
  uint16_t reply_code = 0;
  std::string reply_text;
  uint16_t failing_class = 0, failing_method = 0;
  WARREN_FIELDS(&ConnectionClose::reply_code, &ConnectionClose::reply_text,
                &ConnectionClose::failing_class, &ConnectionClose::failing_method)
};
struct ConnectionCloseOk {
  WARREN_AMQP_METHOD("connection.close-ok", 10, 51)
  WARREN_FIELDS()
};
struct ConnectionBlocked {
  WARREN_AMQP_METHOD("connection.blocked", 10, 60)
  std::string reason;
  WARREN_FIELDS(&ConnectionBlocked::reason)
};
struct ConnectionUnblocked {
  WARREN_AMQP_METHOD("connection.unblocked", 10, 61)
  WARREN_FIELDS()
};
struct ConnectionUpdateSecret {
  WARREN_AMQP_METHOD("connection.update-secret", 10, 70)
  LongStr new_secret;
  std::string reason;
  WARREN_FIELDS(&ConnectionUpdateSecret::new_secret, &ConnectionUpdateSecret::reason)
};
struct ConnectionUpdateSecretOk {
  WARREN_AMQP_METHOD("connection.update-secret-ok", 10, 71)
  WARREN_FIELDS()
};

// ---- channel ----------------------------------------------------------------------------
struct ChannelOpen {
  WARREN_AMQP_METHOD("channel.open", 20, 10)
  std::string reserved_1;
  WARREN_FIELDS(&ChannelOpen::reserved_1)
};
struct ChannelOpenOk {
  WARREN_AMQP_METHOD("channel.open-ok", 20, 11)
  LongStr reserved_1;
  WARREN_FIELDS(&ChannelOpenOk::reserved_1)
};
struct ChannelFlow {
  WARREN_AMQP_METHOD("channel.flow", 20, 20)
  bool active = true;
  WARREN_FIELDS(&ChannelFlow::active)
};
struct ChannelFlowOk {
  WARREN_AMQP_METHOD("channel.flow-ok", 20, 21)
  bool active = true;
  WARREN_FIELDS(&ChannelFlowOk::active)
};
struct ChannelClose {
  WARREN_AMQP_METHOD("channel.close", 20, 40)
  uint16_t reply_code = 0;
  std::string reply_text;
  uint16_t failing_class = 0, failing_method = 0;
  WARREN_FIELDS(&ChannelClose::reply_code, &ChannelClose::reply_text, &ChannelClose::failing_class,
                &ChannelClose::failing_method)
};
struct ChannelCloseOk {
  WARREN_AMQP_METHOD("channel.close-ok", 20, 41)
  WARREN_FIELDS()
};

// ---- exchange ---------------------------------------------------------------------------
struct ExchangeDeclare {
  WARREN_AMQP_METHOD("exchange.declare", 40, 10)
  uint16_t reserved_1 = 0;
  std::string exchange, type;
  bool passive = false, durable = false, auto_delete = false, internal = false, no_wait = false;
  FieldTable arguments;
  WARREN_FIELDS(&ExchangeDeclare::reserved_1, &ExchangeDeclare::exchange, &ExchangeDeclare::type,
                &ExchangeDeclare::passive, &ExchangeDeclare::durable, &ExchangeDeclare::auto_delete,
                &ExchangeDeclare::internal, &ExchangeDeclare::no_wait, &ExchangeDeclare::arguments)
};
struct ExchangeDeclareOk {
  WARREN_AMQP_METHOD("exchange.declare-ok", 40, 11)
  WARREN_FIELDS()
};
struct ExchangeDelete {
  WARREN_AMQP_METHOD("exchange.delete", 40, 20)
  uint16_t reserved_1 = 0;
  std::string exchange;
  bool if_unused = false, no_wait = false;
  WARREN_FIELDS(&ExchangeDelete::reserved_1, &ExchangeDelete::exchange, &ExchangeDelete::if_unused,
                &ExchangeDelete::no_wait)
};
struct ExchangeDeleteOk {
  WARREN_AMQP_METHOD("exchange.delete-ok", 40, 21)
  WARREN_FIELDS()
};
struct ExchangeBind {
  WARREN_AMQP_METHOD("exchange.bind", 40, 30)
  uint16_t reserved_1 = 0;
  std::string destination, source, routing_key;
  bool no_wait = false;
  FieldTable arguments;
  WARREN_FIELDS(&ExchangeBind::reserved_1, &ExchangeBind::destination, &ExchangeBind::source,
                &ExchangeBind::routing_key, &ExchangeBind::no_wait, &ExchangeBind::arguments)
};
struct ExchangeBindOk {
  WARREN_AMQP_METHOD("exchange.bind-ok", 40, 31)
  WARREN_FIELDS()
};
struct ExchangeUnbind {
  WARREN_AMQP_METHOD("exchange.unbind", 40, 40)
  uint16_t reserved_1 = 0;
  std::string destination, source, routing_key;
  bool no_wait = false;
  FieldTable arguments;
  WARREN_FIELDS(&ExchangeUnbind::reserved_1, &ExchangeUnbind::destination, &ExchangeUnbind::source,
                &ExchangeUnbind::routing_key, &ExchangeUnbind::no_wait, &ExchangeUnbind::arguments)
};
struct ExchangeUnbindOk {
  WARREN_AMQP_METHOD("exchange.unbind-ok", 40, 51)
  WARREN_FIELDS()
};

// ---- queue ------------------------------------------------------------------------------
struct QueueDeclare {
  WARREN_AMQP_METHOD("queue.declare", 50, 10)
  uint16_t reserved_1 = 0;
  std::string queue;
  bool passive = false, durable = false, exclusive = false, auto_delete = false, no_wait = false;
  FieldTable arguments;
  WARREN_FIELDS(&QueueDeclare::reserved_1, &QueueDeclare::queue, &QueueDeclare::passive,
                &QueueDeclare::durable, &QueueDeclare::exclusive, &QueueDeclare::auto_delete,
                &QueueDeclare::no_wait, &QueueDeclare::arguments)
};
struct QueueDeclareOk {
  WARREN_AMQP_METHOD("queue.declare-ok", 50, 11)
  std::string queue;
  uint32_t message_count = 0, consumer_count = 0;
  WARREN_FIELDS(&QueueDeclareOk::queue, &QueueDeclareOk::message_count, &QueueDeclareOk::consumer_count)
};
struct QueueBind {
  WARREN_AMQP_METHOD("queue.bind", 50, 20)
  uint16_t reserved_1 = 0;
  std::string queue, exchange, routing_key;
  bool no_wait = false;
  FieldTable arguments;
  WARREN_FIELDS(&QueueBind::reserved_1, &QueueBind::queue, &QueueBind::exchange,
                &QueueBind::routing_key, &QueueBind::no_wait, &QueueBind::arguments)
};
struct QueueBindOk {
  WARREN_AMQP_METHOD("queue.bind-ok", 50, 21)
  WARREN_FIELDS()
};
struct QueuePurge {
  WARREN_AMQP_METHOD("queue.purge", 50, 30)
  uint16_t reserved_1 = 0;
  std::string queue;
  bool no_wait = false;
  WARREN_FIELDS(&QueuePurge::reserved_1, &QueuePurge::queue, &QueuePurge::no_wait)
};
struct QueuePurgeOk {
  WARREN_AMQP_METHOD("queue.purge-ok", 50, 31)
  uint32_t message_count = 0;
  WARREN_FIELDS(&QueuePurgeOk::message_count)
};
struct QueueDelete {
  WARREN_AMQP_METHOD("queue.delete", 50, 40)
  uint16_t reserved_1 = 0;
  std::string queue;
  bool if_unused = false, if_empty = false, no_wait = false;
  WARREN_FIELDS(&QueueDelete::reserved_1, &QueueDelete::queue, &QueueDelete::if_unused,
                &QueueDelete::if_empty, &QueueDelete::no_wait)
};
struct QueueDeleteOk {
  WARREN_AMQP_METHOD("queue.delete-ok", 50, 41)
  uint32_t message_count = 0;
  WARREN_FIELDS(&QueueDeleteOk::message_count)
};
struct QueueUnbind {
  WARREN_AMQP_METHOD("queue.unbind", 50, 50)
  uint16_t reserved_1 = 0;
  std::string queue, exchange, routing_key;
  FieldTable arguments;
  WARREN_FIELDS(&QueueUnbind::reserved_1, &QueueUnbind::queue, &QueueUnbind::exchange,
                &QueueUnbind::routing_key, &QueueUnbind::arguments)
};
struct QueueUnbindOk {
  WARREN_AMQP_METHOD("queue.unbind-ok", 50, 51)
  WARREN_FIELDS()
};

// ---- basic ------------------------------------------------------------------------------
struct BasicQos {
  WARREN_AMQP_METHOD("basic.qos", 60, 10)
  uint32_t prefetch_size = 0;
  uint16_t prefetch_count = 0;
  bool global = false;
  WARREN_FIELDS(&BasicQos::prefetch_size, &BasicQos::prefetch_count, &BasicQos::global)
};
struct BasicQosOk {
  WARREN_AMQP_METHOD("basic.qos-ok", 60, 11)
  WARREN_FIELDS()
};
struct BasicConsume {
  WARREN_AMQP_METHOD("basic.consume", 60, 20)
  uint16_t reserved_1 = 0;
  std::string queue, consumer_tag;
  bool no_local = false, no_ack = false, exclusive = false, no_wait = false;
  FieldTable arguments;
  WARREN_FIELDS(&BasicConsume::reserved_1, &BasicConsume::queue, &BasicConsume::consumer_tag,
                &BasicConsume::no_local, &BasicConsume::no_ack, &BasicConsume::exclusive,
                &BasicConsume::no_wait, &BasicConsume::arguments)
};
struct BasicConsumeOk {
  WARREN_AMQP_METHOD("basic.consume-ok", 60, 21)
  std::string consumer_tag;
  WARREN_FIELDS(&BasicConsumeOk::consumer_tag)
};
struct BasicCancel {
  WARREN_AMQP_METHOD("basic.cancel", 60, 30)
  std::string consumer_tag;
  bool no_wait = false;
  WARREN_FIELDS(&BasicCancel::consumer_tag, &BasicCancel::no_wait)
};
struct BasicCancelOk {
  WARREN_AMQP_METHOD("basic.cancel-ok", 60, 31)
  std::string consumer_tag;
  WARREN_FIELDS(&BasicCancelOk::consumer_tag)
};
struct BasicPublish {
  WARREN_AMQP_METHOD("basic.publish", 60, 40)
  uint16_t reserved_1 = 0;
  std::string exchange, routing_key;
  bool mandatory = false, immediate = false;
  WARREN_FIELDS(&BasicPublish::reserved_1, &BasicPublish::exchange, &BasicPublish::routing_key,
                &BasicPublish::mandatory, &BasicPublish::immediate)
};
struct BasicReturn {
  WARREN_AMQP_METHOD("basic.return", 60, 50)
  uint16_t reply_code = 0;
  std::string reply_text, exchange, routing_key;
  WARREN_FIELDS(&BasicReturn::reply_code, &BasicReturn::reply_text, &BasicReturn::exchange,
                &BasicReturn::routing_key)
};
struct BasicDeliver {
  WARREN_AMQP_METHOD("basic.deliver", 60, 60)
  std::string consumer_tag;
  uint64_t delivery_tag = 0;
  bool redelivered = false;
  std::string exchange, routing_key;
  WARREN_FIELDS(&BasicDeliver::consumer_tag, &BasicDeliver::delivery_tag, &BasicDeliver::redelivered,
                &BasicDeliver::exchange, &BasicDeliver::routing_key)
};
struct BasicGet {
  WARREN_AMQP_METHOD("basic.get", 60, 70)
  uint16_t reserved_1 = 0;
  std::string queue;
  bool no_ack = false;
  WARREN_FIELDS(&BasicGet::reserved_1, &BasicGet::queue, &BasicGet::no_ack)
};
struct BasicGetOk {
  WARREN_AMQP_METHOD("basic.get-ok", 60, 71)
  uint64_t delivery_tag = 0;
  bool redelivered = false;
  std::string exchange, routing_key;
  uint32_t message_count = 0;
  WARREN_FIELDS(&BasicGetOk::delivery_tag, &BasicGetOk::redelivered, &BasicGetOk::exchange,
                &BasicGetOk::routing_key, &BasicGetOk::message_count)
};
struct BasicGetEmpty {
  WARREN_AMQP_METHOD("basic.get-empty", 60, 72)
  std::string reserved_1;
  WARREN_FIELDS(&BasicGetEmpty::reserved_1)
};
struct BasicAck {
  WARREN_AMQP_METHOD("basic.ack", 60, 80)
  uint64_t delivery_tag = 0;
  bool multiple = false;
  WARREN_FIELDS(&BasicAck::delivery_tag, &BasicAck::multiple)
};
struct BasicReject {
  WARREN_AMQP_METHOD("basic.reject", 60, 90)
  uint64_t delivery_tag = 0;
  bool requeue = true;
  WARREN_FIELDS(&BasicReject::delivery_tag, &BasicReject::requeue)
};
struct BasicRecoverAsync {
  WARREN_AMQP_METHOD("basic.recover-async", 60, 100)
  bool requeue = false;
  WARREN_FIELDS(&BasicRecoverAsync::requeue)
};
struct BasicRecover {
  WARREN_AMQP_METHOD("basic.recover", 60, 110)
  bool requeue = false;
  WARREN_FIELDS(&BasicRecover::requeue)
};
struct BasicRecoverOk {
  WARREN_AMQP_METHOD("basic.recover-ok", 60, 111)
  WARREN_FIELDS()
};
struct BasicNack {
  WARREN_AMQP_METHOD("basic.nack", 60, 120)
  uint64_t delivery_tag = 0;
  bool multiple = false, requeue = true;
  WARREN_FIELDS(&BasicNack::delivery_tag, &BasicNack::multiple, &BasicNack::requeue)
};

// ---- confirm and tx ---------------------------------------------------------------------
struct ConfirmSelect {
  WARREN_AMQP_METHOD("confirm.select", 85, 10)
  bool no_wait = false;
  WARREN_FIELDS(&ConfirmSelect::no_wait)
};
struct ConfirmSelectOk {
  WARREN_AMQP_METHOD("confirm.select-ok", 85, 11)
  WARREN_FIELDS()
};
struct TxSelect {
  WARREN_AMQP_METHOD("tx.select", 90, 10)
  WARREN_FIELDS()
};
struct TxSelectOk {
  WARREN_AMQP_METHOD("tx.select-ok", 90, 11)
  WARREN_FIELDS()
};
struct TxCommit {
  WARREN_AMQP_METHOD("tx.commit", 90, 20)
  WARREN_FIELDS()
};
struct TxCommitOk {
  WARREN_AMQP_METHOD("tx.commit-ok", 90, 21)
  WARREN_FIELDS()
};
struct TxRollback {
  WARREN_AMQP_METHOD("tx.rollback", 90, 30)
  WARREN_FIELDS()
};
struct TxRollbackOk {
  WARREN_AMQP_METHOD("tx.rollback-ok", 90, 31)
  WARREN_FIELDS()
};

#undef WARREN_AMQP_METHOD
#undef WARREN_FIELDS

// Every method, for decoding into one value and visiting it.
using AnyMethod = std::variant<
    ConnectionStart, ConnectionStartOk, ConnectionSecure, ConnectionSecureOk, ConnectionTune,
    ConnectionTuneOk, ConnectionOpen, ConnectionOpenOk, ConnectionClose, ConnectionCloseOk,
    ConnectionBlocked, ConnectionUnblocked, ConnectionUpdateSecret, ConnectionUpdateSecretOk,
    ChannelOpen, ChannelOpenOk, ChannelFlow, ChannelFlowOk, ChannelClose, ChannelCloseOk,
    ExchangeDeclare, ExchangeDeclareOk, ExchangeDelete, ExchangeDeleteOk, ExchangeBind,
    ExchangeBindOk, ExchangeUnbind, ExchangeUnbindOk, QueueDeclare, QueueDeclareOk, QueueBind,
    QueueBindOk, QueuePurge, QueuePurgeOk, QueueDelete, QueueDeleteOk, QueueUnbind, QueueUnbindOk,
    BasicQos, BasicQosOk, BasicConsume, BasicConsumeOk, BasicCancel, BasicCancelOk, BasicPublish,
    BasicReturn, BasicDeliver, BasicGet, BasicGetOk, BasicGetEmpty, BasicAck, BasicReject,
    BasicRecoverAsync, BasicRecover, BasicRecoverOk, BasicNack, ConfirmSelect, ConfirmSelectOk,
    TxSelect, TxSelectOk, TxCommit, TxCommitOk, TxRollback, TxRollbackOk>;

}  // namespace warren::amqp
