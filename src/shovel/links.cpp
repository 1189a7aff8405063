#include "shovel/links.h"

#include <fmt/format.h>

#include <deque>

#include "common/log.h"
#include "core/channel.h"
#include "core/vhost.h"
#include "wire/properties_codec.h"

namespace warren::shovel {

namespace {

// Events of a local channel arrive from inside core code (a delivery while a queue hands
// out messages, a confirm while commits are applied). The shovel answers them with more
// core calls, so they are handed on from a task of their own, in order.
class Mailbox : public std::enable_shared_from_this<Mailbox> {
 public:
  explicit Mailbox(core::Engine& engine) : engine_(engine) {}
  void put(std::function<void()> event) {
    if (closed_) return;
    events_.push_back(std::move(event));
    if (scheduled_) return;
    scheduled_ = true;
    engine_.post([weak = weak_from_this()] {
      if (auto self = weak.lock()) self->drain();
    });
  }
  void close() {
    closed_ = true;
    events_.clear();
  }
  size_t size() const { return events_.size(); }
  // Runs after each drain (a source takes deliveries again).
  void when_drained(std::function<void()> fn) { drained_ = std::move(fn); }

 private:
  void drain() {
    scheduled_ = false;
    while (!events_.empty() && !closed_) {
      auto event = std::move(events_.front());
      events_.pop_front();
      event();
    }
    if (drained_ && !closed_) drained_();
  }
  std::function<void()> drained_;
  core::Engine& engine_;
  std::deque<std::function<void()>> events_;
  bool scheduled_ = false;
  bool closed_ = false;
};

std::string connection_name(const ShovelDefinition& d, std::string_view end) {
  return fmt::format("Shovel {} ({}) in vhost '{}'", d.name, end, d.vhost);
}

std::string vhost_of(const ShovelDefinition& d, const AmqpUri& uri) {
  return uri.local && !uri.vhost_given ? d.vhost : uri.vhost;
}

// A core channel on a connection of its own, for either end.
class LocalEnd : public core::ChannelSink {
 public:
  LocalEnd(core::Engine& engine, const ShovelDefinition& d, const AmqpUri& uri,
           std::string_view end)
      : engine_(engine),
        definition_(d),
        vhost_(vhost_of(d, uri)),
        name_(connection_name(d, end)),
        mailbox_(std::make_shared<Mailbox>(engine)) {}
  ~LocalEnd() override { close(); }

  void on_deliver(core::DeliveryInfo) override {}
  void on_confirm(uint64_t, bool, bool) override {}
  void on_return(core::ReturnInfo) override {}
  void on_consumer_cancelled(const std::string&) override {
    report(Status::error(ReplyCode::not_found, "the source queue was deleted"));
  }
  void on_closed(const Status& reason) override { report(reason); }

 protected:
  // Opens the connection and channel; false (and the failure reported) if the vhost is gone.
  bool open() {
    if (!engine_.find_vhost(vhost_)) {
      report(Status::error(ReplyCode::not_found, fmt::format("no vhost '{}'", vhost_)));
      return false;
    }
    connection_ = engine_.connect(name_, {}, vhost_);
    channel_ = engine_.open_channel(*connection_, 1, this);
    return true;
  }
  // The named queue, declared durable if it does not exist; its ready count.
  std::optional<uint64_t> ensure_queue(const std::string& name) {
    core::Vhost* v = engine_.find_vhost(vhost_);
    QueueOptions o;
    o.passive = v && v->queues.contains(name);
    o.durable = true;
    auto r = channel_->queue_declare(name, o);
    if (!r.ok()) {
      report(r.status());
      return std::nullopt;
    }
    return r.value().value.message_count;
  }
  void report(const Status& why) {
    if (failed_) return;
    failed_ = true;
    mailbox_->put([this, why] {
      if (on_failed_) on_failed_(why);
    });
  }
  void close() {
    mailbox_->close();
    if (channel_ && channel_->is_open()) channel_->close();
    if (connection_) engine_.disconnect(*connection_);
    channel_.reset();
    connection_.reset();
  }

  core::Engine& engine_;
  ShovelDefinition definition_;
  std::string vhost_;
  std::string name_;
  std::shared_ptr<Mailbox> mailbox_;
  std::shared_ptr<core::Connection> connection_;
  std::shared_ptr<core::Channel> channel_;
  std::function<void(const Status&)> on_failed_;
  bool failed_ = false;
};

class LocalSource final : public SourceLink, public LocalEnd {
 public:
  LocalSource(core::Engine& engine, const ShovelDefinition& d, const AmqpUri& uri)
      : LocalEnd(engine, d, uri, "source") {}

  void start(Events events) override {
    events_ = std::move(events);
    on_failed_ = events_.failed;
    if (!open()) return;
    std::optional<uint64_t> length = 0;
    if (!definition_.src_queue.empty()) {
      queue_ = definition_.src_queue;
      length = ensure_queue(queue_);
    } else {
      length = own_queue_bound_to_exchange();
    }
    if (!length) return;
    const bool no_ack = definition_.ack_mode == ShovelAckMode::no_ack;
    if (Status s = channel_->basic_qos(definition_.src_prefetch_count, false); !s) return report(s);
    mailbox_->put([this, length = *length] { events_.ready(length); });
    mailbox_->when_drained([this] {
      if (channel_ && channel_->is_open()) channel_->resume_deliveries();
    });
    ConsumeOptions consume;
    consume.no_ack = no_ack;
    if (auto r = channel_->basic_consume(queue_, consume); !r.ok()) return report(r.status());
  }

  // No-ack consumers have no prefetch: the core holds deliveries while a prefetch's worth
  // waits here, so a long queue is not copied onto the heap at once.
  bool ready_for_delivery() const override {
    return mailbox_->size() < std::max<size_t>(definition_.src_prefetch_count, 1);
  }

  void on_deliver(core::DeliveryInfo d) override {
    mailbox_->put([this, d = std::move(d)] {
      events_.message(d.delivery_tag,
                      Carried{d.message->exchange, d.message->routing_key, d.message->properties,
                              d.message->body, d.redelivered});
    });
  }

  void ack(uint64_t tag, bool multiple) override {
    if (channel_ && channel_->is_open())
      if (Status s = channel_->basic_ack(tag, multiple); !s) report(s);
  }
  void stop() override { close(); }

 private:
  std::optional<uint64_t> own_queue_bound_to_exchange() {
    QueueOptions o;
    o.exclusive = true;
    auto r = channel_->queue_declare("", o);
    if (!r.ok()) {
      report(r.status());
      return std::nullopt;
    }
    queue_ = r.value().value.queue;
    auto bound =
        channel_->queue_bind(queue_, definition_.src_exchange, definition_.src_exchange_key, {});
    if (!bound.ok()) {
      report(bound.status());
      return std::nullopt;
    }
    return 0;
  }

  Events events_;
  std::string queue_;
};

class LocalDestination final : public DestinationLink, public LocalEnd {
 public:
  LocalDestination(core::Engine& engine, const ShovelDefinition& d, const AmqpUri& uri)
      : LocalEnd(engine, d, uri, "destination") {}

  void start(Events events) override {
    events_ = std::move(events);
    on_failed_ = events_.failed;
    if (!open()) return;
    if (!definition_.dest_queue.empty() && !ensure_queue(definition_.dest_queue)) return;
    if (Status s = channel_->confirm_select(); !s) return report(s);
    mailbox_->put([this] { events_.ready(); });
  }

  uint64_t publish(const std::string& exchange, const std::string& routing_key,
                   const std::string& properties, const std::string& body) override {
    if (!channel_ || !channel_->is_open()) return 0;
    core::PublishInput in;
    in.exchange = exchange;
    in.routing_key = routing_key;
    in.mandatory = true;
    in.properties = wire::decode_properties(properties).value_or(BasicProperties{});
    in.properties_wire = properties;
    in.body = body;
    if (Status s = channel_->basic_publish(std::move(in)); !s) {
      report(s);
      return 0;
    }
    const uint64_t seq = channel_->confirm_target().seq;
    mailbox_->put([this, seq] { events_.written(seq); });
    return seq;
  }

  void on_confirm(uint64_t seq, bool multiple, bool ack) override {
    mailbox_->put([this, seq, multiple, ack] { events_.confirm(seq, multiple, ack); });
  }
  void on_return(core::ReturnInfo r) override {
    mailbox_->put(
        [this, why = fmt::format("{} {}", int(r.code), r.text)] { events_.returned(why); });
  }
  void stop() override { close(); }

 private:
  Events events_;
};

// ---- the other broker -------------------------------------------------------------------

class RemoteSource final : public SourceLink {
 public:
  RemoteSource(core::Engine& engine, const ShovelDefinition& d, const AmqpUri& uri)
      : engine_(engine), definition_(d), uri_(uri) {}
  ~RemoteSource() override { stop(); }

  void start(Events events) override {
    events_ = std::move(events);
    AmqpClient::Events client_events;
    client_events.delivery = [this](InboundMessage m) {
      events_.message(m.delivery_tag,
                      Carried{std::move(m.exchange), std::move(m.routing_key),
                              std::move(m.properties), std::move(m.body), m.redelivered});
    };
    client_events.closed = [this](const Status& why) { events_.failed(why); };
    client_ = std::make_shared<AmqpClient>(engine_.io(), engine_.token(), std::move(client_events));
    client_->open(uri_, connection_name(definition_, "source"), [this] { declare(); });
  }

  void ack(uint64_t tag, bool multiple) override {
    if (client_) client_->ack(tag, multiple);
  }
  void stop() override {
    if (client_) client_->close();
    client_.reset();
  }

 private:
  void declare() {
    if (!definition_.src_queue.empty()) {
      client_->declare_queue_if_missing(
          definition_.src_queue,
          [this](const amqp::QueueDeclareOk& ok) { consume(ok.queue, ok.message_count); });
      return;
    }
    client_->declare_queue("", false, true, [this](const amqp::QueueDeclareOk& ok) {
      client_->bind_queue(ok.queue, definition_.src_exchange, definition_.src_exchange_key,
                          [this, queue = ok.queue] { consume(queue, 0); });
    });
  }
  void consume(const std::string& queue, uint64_t length) {
    client_->qos(definition_.src_prefetch_count, [this, queue, length] {
      client_->consume(queue, definition_.ack_mode == ShovelAckMode::no_ack,
                       [this, length] { events_.ready(length); });
    });
  }

  core::Engine& engine_;
  ShovelDefinition definition_;
  AmqpUri uri_;
  Events events_;
  std::shared_ptr<AmqpClient> client_;
};

class RemoteDestination final : public DestinationLink {
 public:
  RemoteDestination(core::Engine& engine, const ShovelDefinition& d, const AmqpUri& uri)
      : engine_(engine), definition_(d), uri_(uri) {}
  ~RemoteDestination() override { stop(); }

  void start(Events events) override {
    events_ = std::move(events);
    AmqpClient::Events client_events;
    client_events.confirm = [this](uint64_t seq, bool multiple, bool ack) {
      events_.confirm(seq, multiple, ack);
    };
    client_events.written = [this](uint64_t seq) { events_.written(seq); };
    client_events.returned = [this](InboundMessage m) {
      events_.returned(fmt::format("{} {}", m.reply_code, m.reply_text));
    };
    client_events.blocked = [this](bool blocked) { events_.blocked(blocked); };
    client_events.closed = [this](const Status& why) { events_.failed(why); };
    client_ = std::make_shared<AmqpClient>(engine_.io(), engine_.token(), std::move(client_events));
    client_->open(uri_, connection_name(definition_, "destination"), [this] { declare(); });
  }

  uint64_t publish(const std::string& exchange, const std::string& routing_key,
                   const std::string& properties, const std::string& body) override {
    return client_ ? client_->publish(exchange, routing_key, true, properties, body) : 0;
  }
  void stop() override {
    if (client_) client_->close();
    client_.reset();
  }

 private:
  void declare() {
    auto confirms = [this] { client_->select_confirms([this] { events_.ready(); }); };
    if (definition_.dest_queue.empty()) return confirms();
    client_->declare_queue_if_missing(definition_.dest_queue,
                                      [confirms](const amqp::QueueDeclareOk&) { confirms(); });
  }

  core::Engine& engine_;
  ShovelDefinition definition_;
  AmqpUri uri_;
  Events events_;
  std::shared_ptr<AmqpClient> client_;
};

}  // namespace

void declare_local_source(core::Engine& engine, const ShovelDefinition& definition,
                          const AmqpUri& uri) {
  if (!uri.local || definition.src_queue.empty()) return;
  const std::string vhost = vhost_of(definition, uri);
  core::Vhost* v = engine.find_vhost(vhost);
  if (!v || v->queues.contains(definition.src_queue)) return;
  struct Silent : core::ChannelSink {
    void on_deliver(core::DeliveryInfo) override {}
    void on_confirm(uint64_t, bool, bool) override {}
    void on_return(core::ReturnInfo) override {}
    void on_consumer_cancelled(const std::string&) override {}
    void on_closed(const Status&) override {}
  } silent;
  auto connection = engine.connect(connection_name(definition, "source"), {}, vhost);
  auto channel = engine.open_channel(*connection, 1, &silent);
  QueueOptions o;
  o.durable = true;
  if (auto r = channel->queue_declare(definition.src_queue, o); !r.ok())
    log::warning("shovel '{}': cannot declare its source queue: {}", definition.name,
                 r.status().text());
  engine.disconnect(*connection);
}

std::unique_ptr<SourceLink> make_source(core::Engine& engine, const ShovelDefinition& definition,
                                        const AmqpUri& uri) {
  if (uri.local) return std::make_unique<LocalSource>(engine, definition, uri);
  return std::make_unique<RemoteSource>(engine, definition, uri);
}

std::unique_ptr<DestinationLink> make_destination(core::Engine& engine,
                                                  const ShovelDefinition& definition,
                                                  const AmqpUri& uri) {
  if (uri.local) return std::make_unique<LocalDestination>(engine, definition, uri);
  return std::make_unique<RemoteDestination>(engine, definition, uri);
}

}  // namespace warren::shovel
