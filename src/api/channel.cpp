#include <fmt/format.h>

#include "api/handles.h"
#include "wire/properties_codec.h"

namespace warren::api {

ChannelHandle::ChannelHandle(std::shared_ptr<BrokerHandle> broker) : broker_(std::move(broker)) {}

ChannelHandle::~ChannelHandle() = default;

Status ChannelHandle::close_reason() const {
  std::lock_guard lock(mutex_);
  return closed_reason_;
}

bool ChannelHandle::closed_by_client() const {
  std::lock_guard lock(mutex_);
  return closed_by_client_;
}

void ChannelHandle::mark_closed_by_client() {
  std::lock_guard lock(mutex_);
  closed_by_client_ = true;
}

void ChannelHandle::throw_if_closed() const {
  std::lock_guard lock(mutex_);
  if (!closed_reason_.ok()) throw Error(closed_reason_);
  if (closed_by_client_) throw Error(Status::error(ReplyCode::channel_error, "channel is closed"));
}

void ChannelHandle::enqueue(AsyncOp op) {
  throw_if_closed();
  bool first;
  {
    std::lock_guard lock(outbox_mutex_);
    first = outbox_.empty();
    outbox_.push_back(std::move(op));
  }
  // With the token in hand (a callback, or an idle loop) run it, in order after anything
  // already queued; otherwise the loop drains the outbox.
  if (broker_->in_engine()) {
    drain_outbox();
  } else if (first && token_free_for_inline()) {
    std::lock_guard hold(broker_->token(), std::adopt_lock);
    drain_outbox();
  } else if (first) {
    broker_->post([self = shared_from_this()] { self->drain_outbox(); });
  }
}

void ChannelHandle::drain_outbox() {
  {
    std::lock_guard lock(outbox_mutex_);
    draining_.swap(outbox_);
  }
  uint64_t reserved = 0;
  for (auto& op : draining_)
    if (op.kind == AsyncOp::Kind::publish) reserved += op.publish.body.size();
  {
    core::WriteBatch batch(broker_->engine());  // one submit for the whole burst, at the brace
    for (auto& op : draining_) {
      // A failure closes the channel; the next call on it reports the reason.
      if (!core_ || !core_->is_open()) break;
      switch (op.kind) {
        case AsyncOp::Kind::publish:
          core_->basic_publish(std::move(op.publish));
          break;
        case AsyncOp::Kind::ack:
          core_->basic_ack(op.tag, op.multiple);
          break;
        case AsyncOp::Kind::nack:
          core_->basic_nack(op.tag, op.multiple, op.requeue);
          break;
        case AsyncOp::Kind::reject:
          core_->basic_reject(op.tag, op.requeue);
          break;
      }
    }
  }
  draining_.clear();
  // Only now: released before the batch was submitted, the bytes would be counted nowhere for
  // a moment, and a waiting publisher could slip past the backlog limit.
  broker_->writer().release(reserved);  // submitted, or dropped with a closed channel
}

uint64_t ChannelHandle::next_publish_seq() {
  std::lock_guard lock(mutex_);
  return confirm_mode_ ? ++publishes_ : 0;
}

// ---- ChannelSink: runs on the loop thread ---------------------------------------------
// User callbacks are posted rather than called, so a callback that calls back into the
// broker never runs in the middle of the broker's own bookkeeping. Once the user has
// closed the channel, none of its callbacks runs any more.

void ChannelHandle::on_deliver(core::DeliveryInfo info) {
  broker_->post([self = shared_from_this(), info = std::move(info)]() mutable {
    if (self->closed_by_client()) return;
    auto it = self->delivery_callbacks.find(info.consumer_tag);
    if (it != self->delivery_callbacks.end() && it->second)
      it->second(to_delivery(std::move(info)));
  });
}

void ChannelHandle::on_confirm(uint64_t seq, bool multiple, bool ack) {
  if (confirm_callback)
    broker_->post([self = shared_from_this(), seq, multiple, ack] {
      if (self->confirm_callback && !self->closed_by_client())
        self->confirm_callback(seq, multiple, ack);
    });
}

void ChannelHandle::on_return(core::ReturnInfo returned) {
  if (!return_callback) return;
  broker_->post([self = shared_from_this(), r = std::move(returned)] {
    ReturnedMessage m{uint16_t(r.code), r.text, r.message->exchange, r.message->routing_key,
                      to_message(*r.message)};
    if (self->return_callback && !self->closed_by_client()) self->return_callback(std::move(m));
  });
}

void ChannelHandle::on_consumer_cancelled(const std::string& tag) {
  delivery_callbacks.erase(tag);
  auto it = cancel_callbacks.find(tag);
  if (it == cancel_callbacks.end()) return;
  auto callback = std::move(it->second);
  cancel_callbacks.erase(it);
  if (callback)
    broker_->post([self = shared_from_this(), callback, tag] {
      if (!self->closed_by_client()) callback(tag);
    });
}

void ChannelHandle::on_closed(const Status& reason) {
  std::lock_guard lock(mutex_);
  closed_reason_ = reason;
}

namespace {

void check_shortstr(const std::optional<std::string>& value, std::string_view name) {
  if (value && value->size() > 255)
    throw Error(Status::error(ReplyCode::precondition_failed,
                              fmt::format("property '{}' is longer than 255 bytes", name)));
}

void check_table_keys(const FieldTable& table);

void check_value_keys(const FieldValue& v) {
  if (const auto* t = v.as<FieldTable>()) check_table_keys(*t);
  if (const auto* a = v.as<FieldArray>())
    for (const auto& item : *a) check_value_keys(item);
}

void check_table_keys(const FieldTable& table) {
  for (const auto& [key, value] : table) {
    if (key.size() > 255)
      throw Error(Status::error(
          ReplyCode::precondition_failed,
          fmt::format("field table key '{}...' is longer than 255 bytes", key.substr(0, 32))));
    check_value_keys(value);
  }
}

void check_properties(const BasicProperties& p) {
  if (p.headers) check_table_keys(*p.headers);
  check_shortstr(p.content_type, "content_type");
  check_shortstr(p.content_encoding, "content_encoding");
  check_shortstr(p.correlation_id, "correlation_id");
  check_shortstr(p.reply_to, "reply_to");
  check_shortstr(p.expiration, "expiration");
  check_shortstr(p.message_id, "message_id");
  check_shortstr(p.type, "type");
  check_shortstr(p.user_id, "user_id");
  check_shortstr(p.app_id, "app_id");
  check_shortstr(p.cluster_id, "cluster_id");
}

void check_name(std::string_view name, std::string_view what) {
  if (name.size() > 255)
    throw Error(Status::error(ReplyCode::precondition_failed,
                              fmt::format("{} is longer than 255 bytes", what)));
}

template <class T>
T value_or_throw(Result<T> r) {
  if (!r.ok()) throw Error(r.status());
  return std::move(r.value());
}

void throw_if(const Status& s) {
  if (!s) throw Error(s);
}

}  // namespace

}  // namespace warren::api

namespace warren {

using api::ChannelHandle;
using api::throw_if;
using api::value_or_throw;

namespace {
std::chrono::steady_clock::time_point forever() {
  return std::chrono::steady_clock::time_point::max();
}

core::CommitId commit_of(const Result<core::CommitId>& r) { return r.value(); }
template <class T>
core::CommitId commit_of(const Result<core::Committed<T>>& r) {
  return r.value().commit;
}

// A declaration returns once the commit the core names for it has landed: the same commit
// the AMQP server waits for before its declare-ok.
template <class F>
auto declare(api::ChannelHandle& h, F&& fn) {
  auto result = h.call([&](core::Channel& ch) { return fn(ch); });
  if (!result.ok()) throw Error(result.status());
  h.broker().wait_durable(commit_of(result), forever());
  return std::move(result.value());
}
}  // namespace

Channel::Channel(std::shared_ptr<api::ChannelHandle> handle) : handle_(std::move(handle)) {}
Channel::Channel(Channel&&) noexcept = default;
// The channel being replaced closes as its destructor would have closed it: on the broker's
// thread, which the core channel's teardown needs.
Channel& Channel::operator=(Channel&& other) noexcept {
  if (this == &other) return *this;
  if (handle_) {
    try {
      close();
    } catch (const std::exception&) {
      // closing a channel of a closed broker: nothing left to release
    }
  }
  handle_ = std::move(other.handle_);
  return *this;
}

Channel::~Channel() {
  if (!handle_) return;
  try {
    close();
  } catch (const std::exception&) {
    // closing a channel of a closed broker: nothing left to release
  }
}

void Channel::exchange_declare(std::string_view exchange, std::string_view type,
                               const ExchangeOptions& options) {
  api::check_name(exchange, "exchange name");
  declare(*handle_,
          [&](core::Channel& ch) { return ch.exchange_declare(exchange, type, options); });
}

void Channel::exchange_delete(std::string_view exchange, const ExchangeDeleteOptions& options) {
  declare(*handle_,
          [&](core::Channel& ch) { return ch.exchange_delete(exchange, options.if_unused); });
}

void Channel::exchange_bind(std::string_view destination, std::string_view source,
                            std::string_view routing_key, const FieldTable& arguments) {
  api::check_name(routing_key, "routing key");
  declare(*handle_, [&](core::Channel& ch) {
    return ch.exchange_bind(destination, source, routing_key, arguments);
  });
}

void Channel::exchange_unbind(std::string_view destination, std::string_view source,
                              std::string_view routing_key, const FieldTable& arguments) {
  declare(*handle_, [&](core::Channel& ch) {
    return ch.exchange_unbind(destination, source, routing_key, arguments);
  });
}

QueueDeclareOk Channel::queue_declare(std::string_view queue, const QueueOptions& options) {
  api::check_name(queue, "queue name");
  return declare(*handle_, [&](core::Channel& ch) { return ch.queue_declare(queue, options); })
      .value;
}

void Channel::queue_bind(std::string_view queue, std::string_view exchange,
                         std::string_view routing_key, const FieldTable& arguments) {
  api::check_name(routing_key, "routing key");
  declare(*handle_, [&](core::Channel& ch) {
    return ch.queue_bind(queue, exchange, routing_key, arguments);
  });
}

void Channel::queue_unbind(std::string_view queue, std::string_view exchange,
                           std::string_view routing_key, const FieldTable& arguments) {
  declare(*handle_, [&](core::Channel& ch) {
    return ch.queue_unbind(queue, exchange, routing_key, arguments);
  });
}

uint32_t Channel::queue_purge(std::string_view queue) {
  return declare(*handle_, [&](core::Channel& ch) { return ch.queue_purge(queue); }).value;
}

uint32_t Channel::queue_delete(std::string_view queue, const QueueDeleteOptions& options) {
  return declare(*handle_, [&](core::Channel& ch) { return ch.queue_delete(queue, options); })
      .value;
}

void Channel::confirm_select() {
  throw_if(handle_->call([](core::Channel& ch) { return ch.confirm_select(); }));
  handle_->set_confirm_mode();
}

uint64_t Channel::basic_publish(std::string_view exchange, std::string_view routing_key,
                                Message message, const PublishOptions& options) {
  handle_->throw_if_closed();
  api::check_name(exchange, "exchange name");
  api::check_name(routing_key, "routing key");
  api::check_properties(message.properties);
  auto& broker = handle_->broker();
  if (!broker.in_engine()) broker.writer().wait_for_room(broker.options().publish_backlog_limit);
  broker.writer().reserve(message.body.size());  // released when the loop takes it
  core::PublishInput in;
  in.exchange = exchange;
  in.routing_key = routing_key;
  in.mandatory = options.mandatory;
  in.properties_wire = wire::encode_properties(message.properties);
  in.properties = std::move(message.properties);
  in.body = std::move(message.body);
  uint64_t seq = handle_->next_publish_seq();
  // Asynchronous, as on the wire: a failure closes the channel and the next call reports it.
  handle_->enqueue({api::ChannelHandle::AsyncOp::Kind::publish, std::move(in)});
  return seq;
}

void Channel::tx_select() {
  throw_if(handle_->call([](core::Channel& ch) { return ch.tx_select(); }));
}

void Channel::tx_commit() {
  declare(*handle_, [](core::Channel& ch) { return ch.tx_commit(); });
}

void Channel::tx_rollback() {
  throw_if(handle_->call([](core::Channel& ch) { return ch.tx_rollback(); }));
}

bool Channel::wait_for_confirms(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  // The core says which publish is the last so far and which commit settles it; once that
  // commit is done, the core's own record of the outcome is the answer.
  auto target = handle_->call([](core::Channel& ch) {
    if (!ch.confirm_mode())
      throw Error(Status::error(ReplyCode::precondition_failed, "channel is not in confirm mode"));
    return ch.confirm_target();
  });
  auto& engine = handle_->broker().engine();
  for (;;) {
    bool timed_out = false;
    (void)engine.wait_durable(target.commit, deadline, &timed_out);  // a failure is a nack
    if (timed_out)
      throw Timeout(fmt::format("publishes up to {} not confirmed in time", target.seq));
    auto outcome = handle_->call([&](core::Channel& ch) {
      engine.catch_up();
      return ch.take_confirm_outcome(target.seq);
    });
    if (outcome.settled) return !outcome.nacked;
    // Settled only by a later commit (a duplicate waits for its original's): wait on.
    target = handle_->call([](core::Channel& ch) { return ch.confirm_target(); });
  }
}

void Channel::on_confirm(ConfirmCallback callback) {
  handle_->broker().run([&] { handle_->confirm_callback = std::move(callback); });
}

void Channel::on_return(ReturnCallback callback) {
  handle_->broker().run([&] { handle_->return_callback = std::move(callback); });
}

void Channel::basic_qos(uint16_t prefetch_count, bool global) {
  throw_if(handle_->call([&](core::Channel& ch) { return ch.basic_qos(prefetch_count, global); }));
}

std::optional<Delivery> Channel::basic_get(std::string_view queue, bool no_ack) {
  auto info =
      value_or_throw(handle_->call([&](core::Channel& ch) { return ch.basic_get(queue, no_ack); }));
  if (!info) return std::nullopt;
  return api::to_delivery(std::move(*info));
}

std::string Channel::basic_consume(std::string_view queue, DeliveryCallback callback,
                                   ConsumeOptions options) {
  return value_or_throw(handle_->call([&](core::Channel& ch) {
    auto tag = ch.basic_consume(queue, options);
    if (tag.ok()) {
      handle_->delivery_callbacks[tag.value()] = std::move(callback);
      if (options.on_cancel) handle_->cancel_callbacks[tag.value()] = std::move(options.on_cancel);
    }
    return tag;
  }));
}

void Channel::basic_cancel(std::string_view consumer_tag) {
  throw_if(handle_->call([&](core::Channel& ch) {
    Status s = ch.basic_cancel(consumer_tag);
    // Deliveries already handed out for this consumer are still delivered to its callback.
    handle_->broker().post([h = handle_, tag = std::string(consumer_tag)] {
      h->delivery_callbacks.erase(tag);
      h->cancel_callbacks.erase(tag);
    });
    return s;
  }));
}

// Acknowledgements are asynchronous, as on the wire.
using AsyncKind = api::ChannelHandle::AsyncOp::Kind;

void Channel::basic_ack(uint64_t delivery_tag, bool multiple) {
  handle_->enqueue({AsyncKind::ack, {}, delivery_tag, multiple});
}

void Channel::basic_nack(uint64_t delivery_tag, bool multiple, bool requeue) {
  handle_->enqueue({AsyncKind::nack, {}, delivery_tag, multiple, requeue});
}

void Channel::basic_reject(uint64_t delivery_tag, bool requeue) {
  handle_->enqueue({AsyncKind::reject, {}, delivery_tag, false, requeue});
}

void Channel::basic_recover(bool requeue) {
  throw_if(handle_->call([&](core::Channel& ch) { return ch.basic_recover(requeue); }));
}

void Channel::ack_done(uint64_t delivery_tag, std::string_view key) {
  declare(*handle_, [&](core::Channel& ch) { return ch.ack_done(delivery_tag, key); });
}

bool Channel::is_done(std::string_view key) {
  auto& broker = handle_->broker();
  for (;;) {
    auto answer = broker.run([&] { return broker.engine().is_done(key); });
    if (!answer.pending) return answer.done;
    broker.wait_durable(answer.pending, forever());  // a change to the key is in flight
  }
}

void Channel::forget_done(std::string_view key) {
  auto& broker = handle_->broker();
  broker.wait_durable(broker.run([&] { return broker.engine().forget_done(key); }), forever());
}

void Channel::flush(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  // Through the channel (after what its outbox holds): the commit of all it has done.
  core::CommitId commit = handle_->call([&](core::Channel& ch) {
    if (!ch.is_open()) throw Error(ch.close_reason());
    return ch.last_commit();
  });
  handle_->broker().wait_durable(commit, deadline);
}

void Channel::close() {
  if (handle_->closed_by_client()) return;
  handle_->mark_closed_by_client();
  try {
    handle_->broker().run([h = handle_] { h->detach_and_close(); });
  } catch (const Error&) {
    // the broker is closed; so is the channel
  }
}

bool Channel::is_open() const {
  return handle_->close_reason().ok() && !handle_->closed_by_client();
}

Status Channel::close_reason() const { return handle_->close_reason(); }

uint16_t Channel::id() const { return handle_->id; }

}  // namespace warren
