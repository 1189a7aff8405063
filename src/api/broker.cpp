#include <asio/post.hpp>

#include "api/handles.h"
#include "wire/properties_codec.h"

namespace warren::api {

std::shared_ptr<BrokerHandle> BrokerHandle::open(const BrokerOptions& options,
                                                 std::shared_ptr<storage::FaultInjector> faults) {
  std::shared_ptr<BrokerHandle> b(new BrokerHandle());
  b->options_ = options;
  auto engine = core::Engine::open(*b->io_, core::EngineOptions{options, std::move(faults)});
  if (!engine.ok()) throw Error(engine.status());
  b->engine_ = std::move(engine.value());
  b->token_ = b->engine_->token();
  b->shovels_ = std::make_unique<shovel::ShovelManager>(*b->engine_);
  {
    std::lock_guard hold(*b->token_);
    b->shovels_->recover();  // stored shovels resume with the broker
  }
  b->work_.emplace(asio::make_work_guard(*b->io_));
  b->loop_ = std::thread([io = b->io_.get()] { io->run(); });
  return b;
}

BrokerHandle::~BrokerHandle() { close(); }

Status BrokerHandle::closed_status() {
  return Status::error(ReplyCode::connection_forced, "broker closed");
}

void BrokerHandle::close() {
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
  }
  if (loop_.joinable()) {
    run([this] {
      // Every publish the broker took is settled (its confirm sent) before channels close.
      shovels_.reset();  // each gives its source back what was unacknowledged
      engine_->settle_everything();
      for (auto& weak : channels_)
        if (auto ch = weak.lock()) ch->detach();
      channels_.clear();
      engine_->shutdown();
      engine_.reset();
    });
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    // Callbacks posted before the close (the last confirms) still run, in order.
    std::promise<void> drained;
    asio::post(*io_, [&drained] { drained.set_value(); });
    drained.get_future().wait();
    work_.reset();
    io_->stop();
    loop_.join();
    io_.reset();
  } else {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
}

void BrokerHandle::post(std::function<void()> fn) {
  std::lock_guard lock(mutex_);
  if (closed_) return;
  asio::post(*io_, [token = token_, fn = std::move(fn)] {
    std::lock_guard hold(*token);
    fn();
  });
}

void BrokerHandle::track(const std::shared_ptr<ChannelHandle>& channel) {
  std::erase_if(channels_, [](auto& w) { return w.expired(); });
  channels_.push_back(channel);
}

void BrokerHandle::wait_durable(uint64_t commit, std::chrono::steady_clock::time_point deadline) {
  bool timed_out = false;
  Status s = engine_->wait_durable(commit, deadline, &timed_out);
  if (timed_out) throw Timeout("timed out waiting for a commit");
  if (!s) throw Error(s);
}

// ---- connections ------------------------------------------------------------------------

ConnectionHandle::ConnectionHandle(std::shared_ptr<BrokerHandle> broker, std::string name)
    : broker_(std::move(broker)) {
  connection_ = broker_->run([&] { return broker_->engine().connect(std::move(name)); });
}

ConnectionHandle::~ConnectionHandle() {
  try {
    close();
  } catch (const Error&) {
    // the broker is already closed, and with it this connection
  }
}

Channel ConnectionHandle::channel() {
  auto handle = std::make_shared<ChannelHandle>(broker_);
  broker_->run([&] {
    if (connection_->closed)
      throw Error(Status::error(ReplyCode::channel_error, "connection is closed"));
    handle->id = next_channel_id_++;
    handle->attach(broker_->engine().open_channel(*connection_, handle->id, handle.get()));
    broker_->track(handle);
  });
  return Channel(handle);
}

void ConnectionHandle::close() {
  broker_->run([&] {
    if (!connection_) return;
    broker_->engine().disconnect(*connection_);
  });
}

// ---- conversions ------------------------------------------------------------------------

Message to_message(const storage::MessageData& data) {
  Message m;
  m.body = data.body;
  m.properties = wire::decode_properties(data.properties).value_or(BasicProperties{});
  return m;
}

Delivery to_delivery(core::DeliveryInfo info) {
  Delivery d;
  d.delivery_tag = info.delivery_tag;
  d.redelivered = info.redelivered;
  d.exchange = info.message->exchange;
  d.routing_key = info.message->routing_key;
  d.consumer_tag = std::move(info.consumer_tag);
  d.message_count = info.message_count;
  d.message = to_message(*info.message);
  return d;
}

}  // namespace warren::api

namespace warren {

Broker::Broker(std::shared_ptr<api::BrokerHandle> handle) : handle_(std::move(handle)) {
  default_connection_ =
      std::make_unique<Connection>(std::make_shared<api::ConnectionHandle>(handle_, "default"));
}

std::unique_ptr<Broker> Broker::open(const BrokerOptions& options) {
  return std::unique_ptr<Broker>(new Broker(api::BrokerHandle::open(options)));
}

Broker::~Broker() {
  default_connection_.reset();
  handle_->close();
}

Channel Broker::channel() { return default_connection_->channel(); }

Connection Broker::connect(std::string name) {
  return Connection(std::make_shared<api::ConnectionHandle>(handle_, std::move(name)));
}

std::vector<QueueInfo> Broker::list_queues() {
  return handle_->run([this] { return handle_->engine().list_queues(); });
}

uint64_t Broker::replay(std::string_view from, std::string_view to, const ReplayOptions& o) {
  auto result = handle_->run(
      [&] { return handle_->engine().replay(o.vhost, from, to, o.max_messages, o.copy); });
  if (!result.ok()) throw Error(result.status());
  handle_->wait_durable(result->commit, std::chrono::steady_clock::time_point::max());
  if (!result->stopped.ok()) throw Error(result->stopped);
  return result->count;
}

void Broker::declare_shovel(const ShovelDefinition& definition) {
  auto commit = handle_->run([&] { return handle_->shovels().declare(definition); });
  if (!commit.ok()) throw Error(commit.status());
  handle_->wait_durable(commit.value(), std::chrono::steady_clock::time_point::max());
}

bool Broker::delete_shovel(std::string_view name, std::string_view vhost) {
  auto commit = handle_->run([&] { return handle_->shovels().remove(vhost, name); });
  if (!commit.ok()) return false;
  handle_->wait_durable(commit.value(), std::chrono::steady_clock::time_point::max());
  return true;
}

std::vector<ShovelStatus> Broker::shovels() {
  return handle_->run([this] {
    std::vector<ShovelStatus> out;
    for (auto& entry : handle_->shovels().list()) out.push_back(std::move(entry.status));
    return out;
  });
}

void Broker::put_user(const UserDefinition& definition) {
  core::User user{
      .name = definition.name, .password_hash = definition.password_hash, .tags = definition.tags};
  if (!definition.password.empty()) user.password_hash = core::hash_password(definition.password);
  auto refuse = [](std::string why) {
    throw Error(Status::error(ReplyCode::precondition_failed, why));
  };
  if (user.name.empty()) refuse("a user needs a name");
  if (!user.password_hash.empty() && core::Users::decode_hash(user.password_hash).empty())
    refuse("password_hash is not a rabbit_password_hashing_sha256 hash");
  for (const auto& [vhost, p] : definition.permissions) {
    for (const std::string* pattern : {&p.configure, &p.write, &p.read})
      if (auto error = core::Users::pattern_error(*pattern)) refuse("invalid_regexp: " + *error);
    user.permissions[vhost] = core::Permissions{p.configure, p.write, p.read};
  }
  for (const auto& [vhost, by_exchange] : definition.topic_permissions)
    for (const auto& [exchange, p] : by_exchange) {
      for (const std::string* pattern : {&p.write, &p.read})
        if (auto error = core::Users::topic_pattern_error(*pattern))
          refuse("invalid_regexp: " + *error);
      user.topic_permissions[vhost][exchange] = core::TopicPermissions{p.write, p.read};
    }
  auto commit = handle_->run([&] { return handle_->engine().store_user(std::move(user)); });
  handle_->wait_durable(commit, std::chrono::steady_clock::time_point::max());
}

bool Broker::delete_user(std::string_view name) {
  auto commit = handle_->run([&] { return handle_->engine().delete_user(name); });
  if (commit == 0) return false;
  handle_->wait_durable(commit, std::chrono::steady_clock::time_point::max());
  return true;
}

std::vector<UserDefinition> Broker::users() {
  return handle_->run([this] {
    std::vector<UserDefinition> out;
    for (const core::User* u : handle_->engine().users().list()) {
      UserDefinition d{u->name, {}, u->password_hash, u->tags, {}};
      for (const auto& [vhost, p] : u->permissions)
        d.permissions[vhost] = {p.configure, p.write, p.read};
      for (const auto& [vhost, by_exchange] : u->topic_permissions)
        for (const auto& [exchange, p] : by_exchange)
          d.topic_permissions[vhost][exchange] = {p.write, p.read};
      out.push_back(std::move(d));
    }
    return out;
  });
}

Connection::Connection(std::shared_ptr<api::ConnectionHandle> handle)
    : handle_(std::move(handle)) {}
Connection::Connection(Connection&&) noexcept = default;
Connection& Connection::operator=(Connection&&) noexcept = default;
Connection::~Connection() = default;
Channel Connection::channel() { return handle_->channel(); }
void Connection::close() { handle_->close(); }

}  // namespace warren
