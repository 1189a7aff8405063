#include "core/channel.h"

#include <fmt/format.h>

#include "core/args.h"
#include "core/engine.h"
#include "core/errors.h"
#include "core/vhost.h"
#include "storage/keys.h"
#include "wire/properties_codec.h"

namespace warren::core {

Channel::Channel(Engine& engine, Connection& connection, uint16_t id, ChannelSink* sink)
    : engine_(engine), connection_(connection), id_(id), sink_(sink) {
  engine_.register_channel(this);
}

Channel::~Channel() {
  close();
  engine_.unregister_channel(this);
}

Vhost& Channel::vhost() { return *connection_.vhost; }

Status Channel::check_open() const {
  if (open_) return {};
  if (!close_reason_.ok()) return close_reason_;
  return Status::error(ReplyCode::channel_error, "channel is closed");
}

Status Channel::fail(Status status) {
  if (!open_) return status;
  close();
  close_reason_ = status;
  if (sink_) sink_->on_closed(status);
  return status;
}

void Channel::close() {
  if (!open_) return;
  WARREN_REQUIRE_LOOP(*engine_.token());
  open_ = false;
  // An open transaction ends with the channel: its publishes are dropped and what it
  // acknowledged is still unacknowledged, so it is requeued with the rest.
  tx_publishes_.clear();
  for (auto& s : tx_settles_) unacked_.emplace(s.tag, std::move(s.delivery));
  tx_settles_.clear();
  stop_consuming_replies();
  WriteBatch batch(engine_);
  requeue_all_unacked(batch);
  cancel_all_consumers(batch);
  note_commit(batch.id());
  unconfirmed_.clear();  // confirms still pending when a channel closes are never sent
}

// ---- declarations ---------------------------------------------------------------------

namespace {
const Status& status_of(const Status& s) { return s; }
template <class T>
const Status& status_of(const Result<T>& r) {
  return r.status();
}
template <class T>
Result<Committed<T>> committed(Result<T> r, CommitId commit) {
  if (!r.ok()) return r.status();
  return Committed<T>{std::move(r.value()), commit};
}
Result<CommitId> committed(const Status& s, CommitId commit) {
  if (!s) return s;
  return commit;
}
}  // namespace

Status Channel::permit(Access access, std::string_view kind, std::string_view name, MethodId m) {
  if (connection_.user.empty() || engine_.users().may(connection_.user, vhost().name, access, name))
    return {};
  return error(ReplyCode::access_refused,
               fmt::format("access to {} refused for user '{}'", resource(kind, name, vhost().name),
                           connection_.user),
               m);
}

// Every publish checks write access; the answers per exchange are kept until a user changes.
Status Channel::permit_publish(std::string_view exchange) {
  if (connection_.user.empty()) return {};
  const std::string_view name = exchange.empty() ? "amq.default" : exchange;
  auto& cache = publish_permits_;
  if (cache.generation != engine_.users().generation()) cache = {engine_.users().generation(), {}};
  for (const auto& [known, allowed] : cache.answers)
    if (known == name)
      return allowed ? Status{} : permit(Access::write, "exchange", name, method::basic_publish);
  Status s = permit(Access::write, "exchange", name, method::basic_publish);
  if (cache.answers.size() >= 8) cache.answers.erase(cache.answers.begin());
  cache.answers.emplace_back(std::string(name), s.ok());
  return s;
}

// A check on an open channel that closes it when refused.
Status Channel::guarded(Access access, std::string_view kind, std::string_view name, MethodId m) {
  if (Status s = check_open(); !s) return s;
  if (Status s = permit(access, kind, name, m); !s) return fail(s);
  return {};
}

// Topic authorisation: on a topic exchange the routing key of a publish (write) or of a
// binding from it (read) must match the user's topic permission for it, if one is set.
Status Channel::permit_topic(const Exchange& exchange, Access access, std::string_view routing_key,
                             MethodId m) {
  if (connection_.user.empty() || exchange.type != Exchange::Type::topic ||
      engine_.users().may_use_topic(connection_.user, vhost().name, exchange.name, access,
                                    routing_key))
    return {};
  return error(ReplyCode::access_refused,
               fmt::format("access to topic '{}' in {} refused for user '{}'", routing_key,
                           resource("exchange", exchange.name, vhost().name), connection_.user),
               m);
}

// Bindings: write on the destination, read on the source exchange (and on its topics). A
// source that does not exist is left to the binding itself to report.
Status Channel::permit_binding(std::string_view kind, std::string_view destination,
                               std::string_view source, std::string_view key, MethodId m) {
  if (Status s = guarded(Access::write, kind, destination, m); !s) return s;
  if (Status s = guarded(Access::read, "exchange", source.empty() ? "amq.default" : source, m); !s)
    return s;
  if (auto x = vhost().find_exchange(source))
    if (Status s = permit_topic(*x, Access::read, key, m); !s) return fail(s);
  return {};
}

// Runs one declaration-class method in its own batch: refused on a closed channel, closes
// it on failure; returns the result with the commit that makes it durable.
template <class F>
auto Channel::declare(F&& method) {
  using Out = decltype(committed(method(std::declval<WriteBatch&>()), CommitId{}));
  WARREN_REQUIRE_LOOP(*engine_.token());
  if (Status s = check_open(); !s) return Out(s);
  CommitId commit = 0;
  auto result = [&] {
    WriteBatch batch(engine_);
    auto r = method(batch);
    commit = batch.id();
    return r;
  }();
  note_commit(commit);
  if (!status_of(result).ok()) return Out(fail(status_of(result)));
  return committed(std::move(result), commit);
}

Result<Committed<QueueDeclareOk>> Channel::queue_declare(std::string_view queue,
                                                         const QueueOptions& o) {
  if (queue == kReplyTo || queue.starts_with(kReplyToPrefix)) {
    // The pseudo-queue always exists; a token's name exists while its consumer does.
    if (Status s = check_open(); !s) return s;
    if (queue != kReplyTo && !engine_.reply_channel(queue.substr(kReplyToPrefix.size())))
      return fail(no_queue(vhost().name, queue, method::queue_declare));
    return Committed<QueueDeclareOk>{QueueDeclareOk{std::string(queue), 0, 1}, 0};
  }
  // Checked against the name the queue will have: a server-named one is named first.
  const std::string server_name =
      queue.empty() && !o.passive ? engine_.random_name("amq.gen-") : std::string();
  const std::string_view name = queue.empty() ? std::string_view(server_name) : queue;
  if (!o.passive)
    if (Status s = check_open().ok() ? permit_declare_queue(name, o) : Status{}; !s) return fail(s);
  return declare(
      [&](WriteBatch& b) { return vhost().declare_queue(connection_, queue, o, b, server_name); });
}

// configure on the queue; with a dead-letter exchange also write there and read the queue.
Status Channel::permit_declare_queue(std::string_view name, const QueueOptions& o) {
  const MethodId m = method::queue_declare;
  if (Status s = permit(Access::configure, "queue", name, m); !s) return s;
  if (const FieldValue* dlx = o.arguments.find("x-dead-letter-exchange"))
    if (const auto* x = dlx->as<std::string>()) {
      if (Status s = permit(Access::write, "exchange", x->empty() ? "amq.default" : *x, m); !s)
        return s;
      return permit(Access::read, "queue", name, m);
    }
  return {};
}

Result<Committed<uint32_t>> Channel::queue_delete(std::string_view queue,
                                                  const QueueDeleteOptions& o) {
  if (Status s = guarded(Access::configure, "queue", queue, method::queue_delete); !s) return s;
  return declare([&](WriteBatch& b) { return vhost().delete_queue(connection_, queue, o, b); });
}

Result<Committed<uint32_t>> Channel::queue_purge(std::string_view queue) {
  if (Status s = guarded(Access::read, "queue", queue, method::queue_purge); !s) return s;
  return declare([&](WriteBatch& b) { return vhost().purge_queue(connection_, queue, b); });
}

Result<CommitId> Channel::queue_bind(std::string_view queue, std::string_view exchange,
                                     std::string_view key, const FieldTable& args) {
  if (Status s = permit_binding("queue", queue, exchange, key, method::queue_bind); !s) return s;
  return declare([&](WriteBatch& b) {
    return vhost().bind(Destination{true, std::string(queue)}, exchange, key, args, connection_,
                        method::queue_bind, b);
  });
}

Result<CommitId> Channel::queue_unbind(std::string_view queue, std::string_view exchange,
                                       std::string_view key, const FieldTable& args) {
  if (Status s = permit_binding("queue", queue, exchange, key, method::queue_unbind); !s) return s;
  return declare([&](WriteBatch& b) {
    return vhost().unbind(Destination{true, std::string(queue)}, exchange, key, args, connection_,
                          method::queue_unbind, b);
  });
}

Result<CommitId> Channel::exchange_declare(std::string_view exchange, std::string_view type,
                                           const ExchangeOptions& o) {
  if (!o.passive) {
    const MethodId m = method::exchange_declare;
    if (Status s = guarded(Access::configure, "exchange", exchange, m); !s) return s;
    // An alternate exchange: write there, read this one.
    if (const FieldValue* ae = o.arguments.find("alternate-exchange"))
      if (const auto* x = ae->as<std::string>())
        for (Status s : {guarded(Access::write, "exchange", *x, m),
                         guarded(Access::read, "exchange", exchange, m)})
          if (!s) return s;
  }
  return declare([&](WriteBatch& b) { return vhost().declare_exchange(exchange, type, o, b); });
}

Result<CommitId> Channel::exchange_delete(std::string_view exchange, bool if_unused) {
  if (Status s = guarded(Access::configure, "exchange", exchange, method::exchange_delete); !s)
    return s;
  return declare([&](WriteBatch& b) { return vhost().delete_exchange(exchange, if_unused, b); });
}

Result<CommitId> Channel::exchange_bind(std::string_view destination, std::string_view source,
                                        std::string_view key, const FieldTable& args) {
  if (Status s = permit_binding("exchange", destination, source, key, method::exchange_bind); !s)
    return s;
  return declare([&](WriteBatch& b) {
    return vhost().bind(Destination{false, std::string(destination)}, source, key, args,
                        connection_, method::exchange_bind, b);
  });
}

Result<CommitId> Channel::exchange_unbind(std::string_view destination, std::string_view source,
                                          std::string_view key, const FieldTable& args) {
  if (Status s = permit_binding("exchange", destination, source, key, method::exchange_unbind); !s)
    return s;
  return declare([&](WriteBatch& b) {
    return vhost().unbind(Destination{false, std::string(destination)}, source, key, args,
                          connection_, method::exchange_unbind, b);
  });
}

// ---- publishing -----------------------------------------------------------------------

Status Channel::confirm_select() {
  if (Status s = check_open(); !s) return s;
  if (tx_mode_)
    return fail(error(ReplyCode::precondition_failed, "cannot switch from tx to confirm mode",
                      method::confirm_select));
  confirm_mode_ = true;
  return {};
}

Status Channel::tx_select() {
  if (Status s = check_open(); !s) return s;
  if (confirm_mode_)
    return fail(error(ReplyCode::precondition_failed, "cannot switch from confirm to tx mode",
                      method::tx_select));
  tx_mode_ = true;
  return {};
}

Result<CommitId> Channel::tx_commit() {
  WARREN_REQUIRE_LOOP(*engine_.token());
  if (Status s = check_open(); !s) return s;
  if (!tx_mode_)
    return fail(
        error(ReplyCode::precondition_failed, "channel is not transactional", method::tx_commit));
  auto publishes = std::move(tx_publishes_);
  auto settles = std::move(tx_settles_);
  tx_publishes_.clear();
  tx_settles_.clear();
  CommitId commit = 0;
  {
    WriteBatch batch(engine_);  // the whole transaction lands in one commit
    for (auto& p : publishes)
      if (Status s = publish_now(std::move(p), batch); !s) return s;
    for (auto& s : settles) settle_one(s.delivery, s.how, batch);
    commit = batch.id();
  }
  note_commit(commit);
  kick_consumers();
  return commit;
}

Status Channel::tx_rollback() {
  if (Status s = check_open(); !s) return s;
  if (!tx_mode_)
    return fail(
        error(ReplyCode::precondition_failed, "channel is not transactional", method::tx_rollback));
  tx_publishes_.clear();
  for (auto& s : tx_settles_) unacked_.emplace(s.tag, std::move(s.delivery));
  tx_settles_.clear();
  return {};
}

namespace {

// The expiration property: a non-negative decimal number of ms, refused as RabbitMQ does.
Status parse_expiration(const std::string& text, uint64_t* ms) {
  auto refuse = [&](std::string_view why) {
    return error(ReplyCode::precondition_failed,
                 fmt::format("invalid expiration '{}': {}", text, why), method::basic_publish);
  };
  size_t i = 0;
  bool negative = !text.empty() && text[0] == '-';
  if (negative || (!text.empty() && text[0] == '+')) i = 1;
  size_t digits_start = i;
  uint64_t value = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i)
    value = value > UINT64_MAX / 20 ? UINT64_MAX / 20 : value * 10 + uint64_t(text[i] - '0');
  if (i == digits_start) return refuse("no_integer");
  if (i < text.size()) return refuse(fmt::format("{{leftover_string,\"{}\"}}", text.substr(i)));
  if (negative && value > 0) return refuse(fmt::format("{{value_negative,-{}}}", value));
  *ms = value;
  return {};
}

}  // namespace

Status Channel::publish_checks(const PublishInput& in, std::shared_ptr<Exchange>* exchange,
                               uint64_t* expires_at) {
  const MethodId m = method::basic_publish;
  uint64_t max = engine_.options().max_message_size;
  if (in.body.size() > max)
    return error(
        ReplyCode::precondition_failed,
        fmt::format("message size {} is larger than configured max size {}", in.body.size(), max),
        m);
  if (Status s = permit_publish(in.exchange); !s) return s;
  *exchange = vhost().find_exchange(in.exchange);
  if (!*exchange) return no_exchange(vhost().name, in.exchange, m);
  if ((*exchange)->internal)
    return error(ReplyCode::access_refused,
                 fmt::format("cannot publish to internal {}",
                             resource("exchange", in.exchange, vhost().name)),
                 m);
  if (Status s = permit_topic(**exchange, Access::write, in.routing_key, m); !s) return s;
  if (in.properties.user_id && !connection_.user.empty() &&
      *in.properties.user_id != connection_.user)
    return error(ReplyCode::precondition_failed,
                 fmt::format("user_id property set to '{}' but authenticated user was '{}'",
                             *in.properties.user_id, connection_.user),
                 m);
  if (in.properties.reply_to && *in.properties.reply_to == kReplyTo && !reply_consumer_)
    return error(ReplyCode::precondition_failed, "fast reply consumer does not exist", m);
  *expires_at = 0;
  if (in.properties.expiration) {
    uint64_t ttl = 0;
    if (Status s = parse_expiration(*in.properties.expiration, &ttl); !s) return s;
    *expires_at = now_ms() + ttl;
  }
  return {};
}

namespace {

// CC and BCC headers add routing keys; BCC is removed before anyone sees the message.
const FieldArray* header_keys(const PublishInput& in, const char* name) {
  if (!in.properties.headers) return nullptr;
  const FieldValue* v = in.properties.headers->find(name);
  return v ? v->as<FieldArray>() : nullptr;
}

}  // namespace

void Channel::route(const Exchange& exchange, const PublishInput& in, bool* strip_bcc) {
  targets_.clear();
  const FieldTable* headers = in.properties.headers ? &*in.properties.headers : nullptr;
  vhost().route(exchange, in.routing_key, headers, targets_);
  *strip_bcc = false;
  for (const char* name : {"CC", "BCC"}) {
    const FieldArray* keys = header_keys(in, name);
    if (!keys) continue;
    *strip_bcc |= name[0] == 'B';
    for (const auto& key : *keys)
      if (const auto* s = key.as<std::string>()) vhost().route(exchange, *s, headers, targets_);
  }
}

Status Channel::basic_publish(PublishInput in) {
  WARREN_REQUIRE_LOOP(*engine_.token());
  if (Status s = check_open(); !s) return s;
  std::shared_ptr<Exchange> exchange;
  uint64_t expires_at = 0;
  if (Status s = publish_checks(in, &exchange, &expires_at); !s) return fail(s);
  if (tx_mode_) {
    tx_publishes_.push_back(std::move(in));  // routed when the transaction commits
    return {};
  }
  WriteBatch batch(engine_);
  Status s = publish_now(std::move(in), batch);
  note_commit(batch.id());
  return s;
}

Status Channel::publish_now(PublishInput in, WriteBatch& batch) {
  std::shared_ptr<Exchange> exchange;
  uint64_t expires_at = 0;
  if (Status s = publish_checks(in, &exchange, &expires_at); !s) return fail(s);
  uint64_t seq = confirm_mode_ ? next_publish_seq_++ : 0;

  bool has_bcc = false;
  Channel* reply_target = this->reply_target(in);
  if (!reply_target) route(*exchange, in, &has_bcc);
  // The requester's replies come to this channel's reply consumer under its token.
  const bool names_reply_consumer = in.properties.reply_to && *in.properties.reply_to == kReplyTo;
  if (names_reply_consumer)
    in.properties.reply_to = fmt::format("{}{}", kReplyToPrefix, reply_token_);

  auto data = std::make_shared<storage::MessageData>();
  data->flags = in.properties.persistent() ? storage::MessageData::kPersistent : 0;
  data->expires_at = expires_at;
  data->exchange = std::move(in.exchange);
  data->routing_key = std::move(in.routing_key);
  if (has_bcc || names_reply_consumer) {
    if (has_bcc) in.properties.headers->erase("BCC");
    data->properties = wire::encode_properties(in.properties);
  } else {
    data->properties = std::move(in.properties_wire);
  }
  data->body = std::move(in.body);
  MessagePtr message = std::move(data);

  CommitId commit = 0;
  bool refused = false;  // one refusing queue is enough for a nack, as in RabbitMQ
  for (auto& q : targets_) {
    auto enqueued = q->enqueue(message, batch);
    commit = std::max(commit, enqueued.commit);
    refused |= enqueued.refused;
  }
  if (reply_target) reply_target->deliver_reply(message);
  bool unroutable = targets_.empty() && !reply_target;
  Engine::Counters& counters = engine_.counters;
  ++counters.received;
  counters.received_confirm += confirm_mode_;
  ++(unroutable ? (in.mandatory ? counters.unroutable_returned : counters.unroutable_dropped)
                : counters.routed);
  targets_.clear();  // holds no queue alive between publishes
  if (unroutable && in.mandatory && sink_)
    sink_->on_return(ReturnInfo{ReplyCode::no_route, "NO_ROUTE", message});
  if (confirm_mode_) {
    unconfirmed_.push_back({seq, commit, refused});
    unconfirmed_commit_ = std::max(unconfirmed_commit_, commit);
    release_confirms();
  }
  return {};
}

void Channel::release_confirms() {
  CommitId committed = engine_.committed();
  uint64_t ack_upto = 0;
  size_t acks = 0;
  auto flush_acks = [&] {
    if (acks && sink_) sink_->on_confirm(ack_upto, acks > 1, true);
    engine_.counters.confirmed += acks;
    acks = 0;
  };
  // Confirms go out in publish order, so `multiple` always covers a settled prefix.
  while (!unconfirmed_.empty() && unconfirmed_.front().commit <= committed) {
    const PendingConfirm& c = unconfirmed_.front();
    if (c.nack) {
      flush_acks();
      nacked_since_answer_ = true;
      if (sink_) sink_->on_confirm(c.seq, false, false);
    } else {
      ack_upto = c.seq;
      ++acks;
    }
    unconfirmed_.pop_front();
  }
  flush_acks();
  if (unconfirmed_.empty()) unconfirmed_commit_ = 0;
}

void Channel::on_commits(const storage::CommitOutcomes& outcomes) {
  if (unconfirmed_.empty()) return;
  for (auto& c : unconfirmed_)  // not sorted by commit: a duplicate waits for its original's
    if (c.commit <= outcomes.through && outcomes.failed_commit(c.commit)) c.nack = true;
  release_confirms();
}

Channel::ConfirmTarget Channel::confirm_target() const {
  return {next_publish_seq_ - 1, unconfirmed_commit_};
}

Channel::ConfirmOutcome Channel::take_confirm_outcome(uint64_t seq) {
  if (!unconfirmed_.empty() && unconfirmed_.front().seq <= seq) return {false, false};
  ConfirmOutcome out{true, nacked_since_answer_};
  nacked_since_answer_ = false;
  return out;
}

// ---- consuming ------------------------------------------------------------------------

Status Channel::basic_qos(uint16_t prefetch_count, bool global) {
  if (Status s = check_open(); !s) return s;
  if (global) {
    channel_prefetch_ = prefetch_count;
  } else {
    consumer_prefetch_ = prefetch_count;
    channel_prefetch_ = 0;  // RabbitMQ: a per-consumer qos drops the channel-wide limit
  }
  kick_consumers();
  return {};
}

bool Channel::can_deliver(const Consumer& c) const {
  if (!open_ || c.cancelled || (sink_ && !sink_->ready_for_delivery())) return false;
  if (c.prefetch && c.unacked >= c.prefetch) return false;
  if (channel_prefetch_ && unacked_.size() >= channel_prefetch_) return false;
  return true;
}

namespace {

// Queues that count returns show the count as RabbitMQ's quorum queues do: always on a get,
// on a consume once it is above zero.
MessagePtr with_delivery_count(const MessagePtr& m) {
  auto p = wire::decode_properties(m->properties);
  if (!p) return m;
  if (!p->headers) p->headers.emplace();
  p->headers->set("x-delivery-count", FieldValue(int64_t(m->delivery_count)));
  auto copy = std::make_shared<storage::MessageData>(*m);
  copy->properties = wire::encode_properties(*p);
  return copy;
}

}  // namespace

DeliveryInfo Channel::delivery_info(uint64_t tag, Queue& q, Taken& t, std::string consumer_tag,
                                    bool is_get) {
  MessagePtr m = std::move(t.message);
  bool redelivered = t.redelivered || m->delivery_count > 0;
  ++q.stats.deliver_get;
  q.stats.redeliver += redelivered;
  ++engine_.counters.delivered;
  engine_.counters.redelivered += redelivered;
  if (q.settings.counts_deliveries() && (is_get || m->delivery_count > 0))
    m = with_delivery_count(m);
  uint32_t count = is_get ? uint32_t(q.ready()) : 0;
  return DeliveryInfo{tag, redelivered, std::move(consumer_tag), count, std::move(m)};
}

void Channel::deliver(const std::shared_ptr<Consumer>& c, Queue& q, Taken t, WriteBatch& batch) {
  uint64_t tag = next_tag_++;
  Queue::Delivered d{t.seq, t.db, t.message->body.size(), t.message->expires_at};
  q.add_unacked();
  if (c->no_ack) {
    q.acked(d, batch);
  } else {
    ++c->unacked;
    unacked_.emplace(tag, Unacked{q.shared_from_this(), c, d});
  }
  if (sink_) sink_->on_deliver(delivery_info(tag, q, t, c->tag, false));
}

Result<std::optional<DeliveryInfo>> Channel::basic_get(std::string_view queue, bool no_ack) {
  WARREN_REQUIRE_LOOP(*engine_.token());
  if (Status s = guarded(Access::read, "queue", queue, method::basic_get); !s) return s;
  auto q = vhost().usable_queue(connection_, queue, method::basic_get);
  if (!q.ok()) return fail(q.status());
  Queue& queue_ref = *q.value();
  queue_ref.touch();
  WriteBatch batch(engine_);
  auto t = queue_ref.take_next(batch);
  if (!t) {
    ++engine_.counters.get_empty;
    note_commit(batch.id());
    return std::optional<DeliveryInfo>();
  }
  uint64_t tag = next_tag_++;
  Queue::Delivered d{t->seq, t->db, t->message->body.size(), t->message->expires_at};
  queue_ref.add_unacked();
  if (no_ack)
    queue_ref.acked(d, batch);
  else
    unacked_.emplace(tag, Unacked{q.value(), nullptr, d});
  note_commit(batch.id());
  return std::optional<DeliveryInfo>(delivery_info(tag, queue_ref, *t, {}, true));
}

Result<std::string> Channel::basic_consume(std::string_view queue, const ConsumeOptions& o) {
  WARREN_REQUIRE_LOOP(*engine_.token());
  const MethodId m = method::basic_consume;
  if (Status s = check_open(); !s) return s;
  if (queue == kReplyTo)
    return consume_replies(
        o.consumer_tag.empty() ? engine_.random_name("amq.ctag-") : o.consumer_tag, o);
  if (Status s = guarded(Access::read, "queue", queue, m); !s) return s;
  auto q = vhost().usable_queue(connection_, queue, m);
  if (!q.ok()) return fail(q.status());
  std::string tag = o.consumer_tag.empty() ? engine_.random_name("amq.ctag-") : o.consumer_tag;
  if (consumers_.count(tag))
    return fail(
        error(ReplyCode::not_allowed, fmt::format("attempt to reuse consumer tag '{}'", tag), m));
  auto& existing = q.value()->consumers;
  bool locked = !existing.empty() && (o.exclusive || existing.front()->exclusive);
  if (locked)
    return fail(error(ReplyCode::access_refused,
                      resource("queue", queue, vhost().name) + " in exclusive use", m));
  int64_t priority = 0;
  if (const FieldValue* v = o.arguments.find("x-priority")) {
    auto n = v->as_integer();
    if (!n)
      return fail(error(ReplyCode::precondition_failed,
                        fmt::format("invalid arg 'x-priority' for {}: \"expected integer, got {}\"",
                                    resource("queue", queue, vhost().name), rabbit_type_name(*v)),
                        m));
    priority = *n;
  }
  auto c = std::make_shared<Consumer>();
  c->tag = tag;
  c->channel = this;
  c->queue = q.value();
  c->no_ack = o.no_ack;
  c->exclusive = o.exclusive;
  c->prefetch = consumer_prefetch_;
  c->priority = priority;
  consumers_.emplace(tag, c);
  q.value()->add_consumer(c);
  return tag;
}

Status Channel::basic_cancel(std::string_view consumer_tag) {
  WARREN_REQUIRE_LOOP(*engine_.token());
  if (Status s = check_open(); !s) return s;
  if (reply_consumer_ == consumer_tag) {
    stop_consuming_replies();
    return {};
  }
  auto it = consumers_.find(consumer_tag);
  if (it == consumers_.end()) return {};  // RabbitMQ answers cancel-ok for unknown tags
  auto c = it->second;
  consumers_.erase(it);
  c->cancelled = true;
  c->queue->remove_consumer(c);
  WriteBatch batch(engine_);
  vhost().consumer_left(c->queue, batch);
  note_commit(batch.id());
  return {};
}

Result<std::string> Channel::consume_replies(std::string tag, const ConsumeOptions& o) {
  const MethodId m = method::basic_consume;
  if (!o.no_ack)
    return fail(error(ReplyCode::precondition_failed, "reply consumer cannot acknowledge", m));
  if (reply_consumer_)
    return fail(error(ReplyCode::precondition_failed, "reply consumer already set", m));
  if (consumers_.count(tag))
    return fail(
        error(ReplyCode::not_allowed, fmt::format("attempt to reuse consumer tag '{}'", tag), m));
  reply_consumer_ = tag;
  reply_token_ = engine_.random_name("");
  engine_.register_reply_token(reply_token_, this);
  return tag;
}

void Channel::stop_consuming_replies() {
  if (!reply_consumer_) return;
  engine_.unregister_reply_token(reply_token_);
  reply_consumer_.reset();
}

Channel* Channel::reply_target(const PublishInput& in) const {
  if (!in.exchange.empty() || !in.routing_key.starts_with(kReplyToPrefix)) return nullptr;
  Channel* target =
      engine_.reply_channel(std::string_view(in.routing_key).substr(kReplyToPrefix.size()));
  return target && target->connection_.vhost == connection_.vhost ? target : nullptr;
}

void Channel::deliver_reply(MessagePtr message) {
  if (!open_ || !reply_consumer_ || !sink_) return;
  sink_->on_deliver(DeliveryInfo{next_tag_++, false, *reply_consumer_, 0, std::move(message)});
}

void Channel::consumer_cancelled_by_broker(Consumer& c) {
  c.cancelled = true;
  std::string tag = c.tag;
  consumers_.erase(tag);
  if (sink_ && open_) sink_->on_consumer_cancelled(tag);
}

void Channel::cancel_all_consumers(WriteBatch& batch) {
  auto consumers = std::move(consumers_);
  consumers_.clear();
  for (auto& [tag, c] : consumers) {
    c->cancelled = true;
    c->queue->remove_consumer(c);
    vhost().consumer_left(c->queue, batch);
  }
}

void Channel::kick_consumers() {
  for (auto& [tag, c] : consumers_) c->queue->schedule_dispatch();
}

// ---- acknowledgements -----------------------------------------------------------------

void Channel::settle_one(Unacked& u, Settle how, WriteBatch& batch) {
  if (u.consumer) --u.consumer->unacked;
  switch (how) {
    case Settle::drop:
      u.queue->rejected(u.delivery, batch);
      break;
    case Settle::ack:
      ++u.queue->stats.ack;
      ++engine_.counters.acknowledged;
      u.queue->acked(u.delivery, batch);
      break;
    case Settle::requeue:
    case Settle::release:
      u.queue->returned(u.delivery, how == Settle::requeue, batch);
      break;
  }
}

Status Channel::settle(uint64_t tag, bool multiple, Settle how, MethodId m) {
  WARREN_REQUIRE_LOOP(*engine_.token());
  if (Status s = check_open(); !s) return s;
  std::vector<PendingSettle> settled;
  auto take_up_to = [&](std::map<uint64_t, Unacked>::iterator end) {
    for (auto it = unacked_.begin(); it != end; it = unacked_.erase(it))
      settled.push_back({std::move(it->second), it->first, how});
  };
  if (tag == 0 && multiple) {
    take_up_to(unacked_.end());  // everything outstanding
  } else {
    auto it = unacked_.find(tag);
    if (it == unacked_.end()) return fail(unknown_delivery_tag(tag, m));
    if (multiple) {
      take_up_to(std::next(it));
    } else {
      settled.push_back({std::move(it->second), tag, how});
      unacked_.erase(it);
    }
  }
  if (tx_mode_) {  // settled when the transaction commits
    for (auto& s : settled) tx_settles_.push_back(std::move(s));
    return {};
  }
  {
    WriteBatch batch(engine_);
    for (auto& s : settled) settle_one(s.delivery, s.how, batch);
    note_commit(batch.id());
  }
  kick_consumers();
  return {};
}

Status Channel::basic_ack(uint64_t tag, bool multiple) {
  return settle(tag, multiple, Settle::ack, method::basic_ack);
}

Status Channel::basic_nack(uint64_t tag, bool multiple, bool requeue) {
  return settle(tag, multiple, requeue ? Settle::requeue : Settle::drop, method::basic_nack);
}

Status Channel::basic_reject(uint64_t tag, bool requeue) {
  return settle(tag, false, requeue ? Settle::requeue : Settle::drop, method::basic_reject);
}

Result<CommitId> Channel::ack_done(uint64_t tag, std::string_view key) {
  WARREN_REQUIRE_LOOP(*engine_.token());
  if (Status s = check_open(); !s) return s;
  if (tx_mode_)
    return fail(error(ReplyCode::precondition_failed,
                      "ack_done is not available on a transactional channel", method::basic_ack));
  WriteBatch batch(engine_);  // the ack and the key land together
  if (Status s = basic_ack(tag, false); !s) return s;
  engine_.mark_done(key, batch);
  note_commit(batch.id());
  return batch.id();
}

Status Channel::basic_recover(bool requeue) {
  WARREN_REQUIRE_LOOP(*engine_.token());
  if (Status s = check_open(); !s) return s;
  if (!requeue)
    return fail(error(ReplyCode::not_implemented, "requeue=false", method::basic_recover));
  {
    WriteBatch batch(engine_);
    requeue_all_unacked(batch);
    note_commit(batch.id());
  }
  kick_consumers();
  return {};
}

void Channel::requeue_all_unacked(WriteBatch& batch) {
  auto all = std::move(unacked_);
  unacked_.clear();
  for (auto& [tag, u] : all) settle_one(u, Settle::release, batch);
}

}  // namespace warren::core
