// The C API (warren/c.h) over the C++ one: each function catches everything, so no
// exception crosses into C, and turns warren::Error into its reply code and text.
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <string>

#include "warren/broker.h"
#include "warren/c.h"
#include "warren/error.h"

struct warren_error_t {
  int code;
  std::string text;
};
struct warren_options_t {
  warren::BrokerOptions options;
};
struct warren_broker_t {
  std::unique_ptr<warren::Broker> broker;
};
struct warren_channel_t {
  warren::Channel channel;
};
struct warren_table_t {
  warren::FieldTable table;
};
struct warren_properties_t {
  warren::BasicProperties properties;
};
struct warren_delivery_t {
  warren::Delivery delivery;
};

namespace {

void set_error(warren_error_t** err, int code, std::string text) {
  if (err == nullptr) return;
  delete *err;
  *err = new (std::nothrow) warren_error_t{code, std::move(text)};
}

// Runs fn; any exception becomes *err and its code. Returns 0 on success.
template <class F>
int guarded(warren_error_t** err, F&& fn) {
  try {
    fn();
    return 0;
  } catch (const warren::Error& e) {
    set_error(err, int(e.code()), e.status().text());
    return int(e.code());
  } catch (const warren::Timeout& e) {
    set_error(err, WARREN_TIMEOUT, e.what());
    return WARREN_TIMEOUT;
  } catch (const std::bad_alloc&) {
    set_error(err, int(warren::ReplyCode::internal_error), "INTERNAL_ERROR - out of memory");
  } catch (const std::exception& e) {
    set_error(err, int(warren::ReplyCode::internal_error),
              std::string("INTERNAL_ERROR - ") + e.what());
  } catch (...) {
    set_error(err, int(warren::ReplyCode::internal_error), "INTERNAL_ERROR - unknown failure");
  }
  return int(warren::ReplyCode::internal_error);
}

std::string_view text(const char* s) { return s ? std::string_view(s) : std::string_view(); }

char* copy_string(std::string_view s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  if (out == nullptr) throw std::bad_alloc();
  std::memcpy(out, s.data(), s.size());
  out[s.size()] = '\0';
  return out;
}

const warren::FieldTable& table_or_empty(const warren_table_t* t) {
  static const warren::FieldTable empty;
  return t ? t->table : empty;
}

std::optional<std::string> warren::BasicProperties::*string_property(std::string_view name) {
  using P = warren::BasicProperties;
  if (name == "content_type") return &P::content_type;
  if (name == "content_encoding") return &P::content_encoding;
  if (name == "correlation_id") return &P::correlation_id;
  if (name == "reply_to") return &P::reply_to;
  if (name == "expiration") return &P::expiration;
  if (name == "message_id") return &P::message_id;
  if (name == "type") return &P::type;
  if (name == "user_id") return &P::user_id;
  if (name == "app_id") return &P::app_id;
  if (name == "cluster_id") return &P::cluster_id;
  return nullptr;
}

const warren::FieldValue* header(const warren_delivery_t* d, const char* key) {
  const auto& headers = d->delivery.message.properties.headers;
  return headers ? headers->find(text(key)) : nullptr;
}

}  // namespace

extern "C" {

int warren_error_code(const warren_error_t* err) { return err ? err->code : 0; }
const char* warren_error_text(const warren_error_t* err) { return err ? err->text.c_str() : ""; }
void warren_error_free(warren_error_t* err) { delete err; }
void warren_free(void* ptr) { std::free(ptr); }

warren_options_t* warren_options_create(void) { return new (std::nothrow) warren_options_t{}; }
void warren_options_destroy(warren_options_t* options) { delete options; }
void warren_options_set_data_dir(warren_options_t* options, const char* dir) {
  options->options.data_dir = text(dir);
}
void warren_options_set_durability(warren_options_t* options, int durability) {
  switch (durability) {
    case WARREN_DURABILITY_NOSYNC:
      options->options.durability = warren::Durability::nosync;
      break;
    case WARREN_DURABILITY_IN_MEMORY:
      options->options.durability = warren::Durability::in_memory;
      break;
    default:
      options->options.durability = warren::Durability::fsync;
  }
}
void warren_options_set_max_message_size(warren_options_t* options, uint64_t bytes) {
  options->options.max_message_size = bytes;
}

warren_broker_t* warren_broker_open(const warren_options_t* options, warren_error_t** err) {
  warren_broker_t* broker = nullptr;
  guarded(err, [&] {
    auto opened = warren::Broker::open(options ? options->options : warren::BrokerOptions{});
    broker = new warren_broker_t{std::move(opened)};
  });
  return broker;
}

void warren_broker_close(warren_broker_t* broker) {
  guarded(nullptr, [&] { delete broker; });
}

uint64_t warren_broker_replay(warren_broker_t* broker, const char* from, const char* to, int copy,
                              warren_error_t** err) {
  uint64_t moved = 0;
  guarded(err, [&] {
    warren::ReplayOptions options;
    options.copy = copy != 0;
    moved = broker->broker->replay(text(from), text(to), options);
  });
  return moved;
}

warren_channel_t* warren_channel_open(warren_broker_t* broker, warren_error_t** err) {
  warren_channel_t* channel = nullptr;
  guarded(err, [&] { channel = new warren_channel_t{broker->broker->channel()}; });
  return channel;
}

void warren_channel_close(warren_channel_t* channel) {
  guarded(nullptr, [&] { delete channel; });
}

int warren_channel_is_open(const warren_channel_t* channel) {
  return channel->channel.is_open() ? 1 : 0;
}

warren_table_t* warren_table_create(void) { return new (std::nothrow) warren_table_t{}; }
void warren_table_destroy(warren_table_t* table) { delete table; }
void warren_table_set_int(warren_table_t* table, const char* key, int64_t value) {
  guarded(nullptr, [&] { table->table.set(std::string(text(key)), value); });
}
void warren_table_set_string(warren_table_t* table, const char* key, const char* value) {
  guarded(nullptr, [&] { table->table.set(std::string(text(key)), std::string(text(value))); });
}
void warren_table_set_bool(warren_table_t* table, const char* key, int value) {
  guarded(nullptr, [&] { table->table.set(std::string(text(key)), value != 0); });
}

int warren_queue_declare(warren_channel_t* channel, const char* queue, int flags,
                         const warren_table_t* arguments, char** declared_name,
                         uint32_t* message_count, uint32_t* consumer_count, warren_error_t** err) {
  return guarded(err, [&] {
    warren::QueueOptions options{.passive = (flags & WARREN_PASSIVE) != 0,
                                 .durable = (flags & WARREN_DURABLE) != 0,
                                 .exclusive = (flags & WARREN_EXCLUSIVE) != 0,
                                 .auto_delete = (flags & WARREN_AUTO_DELETE) != 0,
                                 .arguments = table_or_empty(arguments)};
    auto ok = channel->channel.queue_declare(text(queue), options);
    if (declared_name) *declared_name = copy_string(ok.queue);
    if (message_count) *message_count = ok.message_count;
    if (consumer_count) *consumer_count = ok.consumer_count;
  });
}

int warren_queue_bind(warren_channel_t* channel, const char* queue, const char* exchange,
                      const char* routing_key, const warren_table_t* arguments,
                      warren_error_t** err) {
  return guarded(err, [&] {
    channel->channel.queue_bind(text(queue), text(exchange), text(routing_key),
                                table_or_empty(arguments));
  });
}

int warren_queue_unbind(warren_channel_t* channel, const char* queue, const char* exchange,
                        const char* routing_key, const warren_table_t* arguments,
                        warren_error_t** err) {
  return guarded(err, [&] {
    channel->channel.queue_unbind(text(queue), text(exchange), text(routing_key),
                                  table_or_empty(arguments));
  });
}

int warren_queue_purge(warren_channel_t* channel, const char* queue, uint32_t* purged,
                       warren_error_t** err) {
  return guarded(err, [&] {
    uint32_t n = channel->channel.queue_purge(text(queue));
    if (purged) *purged = n;
  });
}

int warren_queue_delete(warren_channel_t* channel, const char* queue, int if_unused, int if_empty,
                        uint32_t* deleted, warren_error_t** err) {
  return guarded(err, [&] {
    uint32_t n = channel->channel.queue_delete(
        text(queue), {.if_unused = if_unused != 0, .if_empty = if_empty != 0});
    if (deleted) *deleted = n;
  });
}

int warren_exchange_declare(warren_channel_t* channel, const char* exchange, const char* type,
                            int flags, const warren_table_t* arguments, warren_error_t** err) {
  return guarded(err, [&] {
    channel->channel.exchange_declare(text(exchange), text(type),
                                      {.passive = (flags & WARREN_PASSIVE) != 0,
                                       .durable = (flags & WARREN_DURABLE) != 0,
                                       .auto_delete = (flags & WARREN_AUTO_DELETE) != 0,
                                       .internal = (flags & WARREN_INTERNAL) != 0,
                                       .arguments = table_or_empty(arguments)});
  });
}

int warren_exchange_delete(warren_channel_t* channel, const char* exchange, int if_unused,
                           warren_error_t** err) {
  return guarded(err, [&] {
    channel->channel.exchange_delete(text(exchange), {.if_unused = if_unused != 0});
  });
}

warren_properties_t* warren_properties_create(void) {
  return new (std::nothrow) warren_properties_t{};
}
void warren_properties_destroy(warren_properties_t* properties) { delete properties; }

int warren_properties_set(warren_properties_t* properties, const char* name, const char* value) {
  auto field = string_property(text(name));
  if (field == nullptr) return int(warren::ReplyCode::precondition_failed);
  return guarded(nullptr, [&] { properties->properties.*field = std::string(text(value)); });
}
void warren_properties_set_delivery_mode(warren_properties_t* properties, uint8_t mode) {
  properties->properties.delivery_mode = mode;
}
void warren_properties_set_priority(warren_properties_t* properties, uint8_t priority) {
  properties->properties.priority = priority;
}
void warren_properties_set_timestamp(warren_properties_t* properties, uint64_t seconds) {
  properties->properties.timestamp = seconds;
}
void warren_properties_set_headers(warren_properties_t* properties, const warren_table_t* headers) {
  guarded(nullptr, [&] { properties->properties.headers = table_or_empty(headers); });
}

int warren_confirm_select(warren_channel_t* channel, warren_error_t** err) {
  return guarded(err, [&] { channel->channel.confirm_select(); });
}

uint64_t warren_basic_publish(warren_channel_t* channel, const char* exchange,
                              const char* routing_key, const void* body, size_t body_size,
                              const warren_properties_t* properties, int mandatory,
                              warren_error_t** err) {
  uint64_t sequence = 0;
  guarded(err, [&] {
    warren::Message message{std::string(static_cast<const char*>(body), body ? body_size : 0),
                            properties ? properties->properties : warren::BasicProperties{}};
    sequence = channel->channel.basic_publish(text(exchange), text(routing_key), std::move(message),
                                              {.mandatory = mandatory != 0});
  });
  return sequence;
}

int warren_wait_for_confirms(warren_channel_t* channel, int64_t timeout_ms, int* all_acked,
                             warren_error_t** err) {
  return guarded(err, [&] {
    bool acked = channel->channel.wait_for_confirms(std::chrono::milliseconds(timeout_ms));
    if (all_acked) *all_acked = acked ? 1 : 0;
  });
}

int warren_basic_qos(warren_channel_t* channel, uint16_t prefetch_count, warren_error_t** err) {
  return guarded(err, [&] { channel->channel.basic_qos(prefetch_count); });
}

warren_delivery_t* warren_basic_get(warren_channel_t* channel, const char* queue, int no_ack,
                                    warren_error_t** err) {
  warren_delivery_t* delivery = nullptr;
  guarded(err, [&] {
    if (auto got = channel->channel.basic_get(text(queue), no_ack != 0))
      delivery = new warren_delivery_t{std::move(*got)};
  });
  return delivery;
}

char* warren_basic_consume(warren_channel_t* channel, const char* queue, int no_ack,
                           warren_deliver_fn callback, void* state, warren_error_t** err) {
  char* tag = nullptr;
  guarded(err, [&] {
    auto deliver = [callback, state](warren::Delivery d) {
      warren_delivery_t delivery{std::move(d)};
      callback(state, &delivery);
    };
    tag =
        copy_string(channel->channel.basic_consume(text(queue), deliver, {.no_ack = no_ack != 0}));
  });
  return tag;
}

int warren_basic_cancel(warren_channel_t* channel, const char* consumer_tag, warren_error_t** err) {
  return guarded(err, [&] { channel->channel.basic_cancel(text(consumer_tag)); });
}

int warren_basic_ack(warren_channel_t* channel, uint64_t delivery_tag, int multiple,
                     warren_error_t** err) {
  return guarded(err, [&] { channel->channel.basic_ack(delivery_tag, multiple != 0); });
}

int warren_basic_nack(warren_channel_t* channel, uint64_t delivery_tag, int multiple, int requeue,
                      warren_error_t** err) {
  return guarded(err,
                 [&] { channel->channel.basic_nack(delivery_tag, multiple != 0, requeue != 0); });
}

int warren_basic_reject(warren_channel_t* channel, uint64_t delivery_tag, int requeue,
                        warren_error_t** err) {
  return guarded(err, [&] { channel->channel.basic_reject(delivery_tag, requeue != 0); });
}

int warren_channel_flush(warren_channel_t* channel, int64_t timeout_ms, warren_error_t** err) {
  return guarded(err, [&] { channel->channel.flush(std::chrono::milliseconds(timeout_ms)); });
}

void warren_delivery_destroy(warren_delivery_t* delivery) { delete delivery; }
uint64_t warren_delivery_tag(const warren_delivery_t* d) { return d->delivery.delivery_tag; }
int warren_delivery_redelivered(const warren_delivery_t* d) {
  return d->delivery.redelivered ? 1 : 0;
}
const void* warren_delivery_body(const warren_delivery_t* d, size_t* size) {
  if (size) *size = d->delivery.message.body.size();
  return d->delivery.message.body.data();
}
const char* warren_delivery_exchange(const warren_delivery_t* d) {
  return d->delivery.exchange.c_str();
}
const char* warren_delivery_routing_key(const warren_delivery_t* d) {
  return d->delivery.routing_key.c_str();
}
const char* warren_delivery_consumer_tag(const warren_delivery_t* d) {
  return d->delivery.consumer_tag.c_str();
}
uint32_t warren_delivery_message_count(const warren_delivery_t* d) {
  return d->delivery.message_count;
}

const char* warren_delivery_property(const warren_delivery_t* d, const char* name) {
  auto field = string_property(text(name));
  if (field == nullptr) return nullptr;
  const auto& value = d->delivery.message.properties.*field;
  return value ? value->c_str() : nullptr;
}

uint8_t warren_delivery_delivery_mode(const warren_delivery_t* d) {
  return d->delivery.message.properties.delivery_mode.value_or(0);
}

int warren_delivery_header_int(const warren_delivery_t* d, const char* key, int64_t* value) {
  const warren::FieldValue* v = header(d, key);
  auto integer = v ? v->as_integer() : std::nullopt;
  if (!integer) return 0;
  if (value) *value = *integer;
  return 1;
}

const char* warren_delivery_header_string(const warren_delivery_t* d, const char* key) {
  const warren::FieldValue* v = header(d, key);
  const std::string* s = v ? v->as<std::string>() : nullptr;
  return s ? s->c_str() : nullptr;
}

}  // extern "C"
