// The broker: a data directory opened as a RabbitMQ-like broker inside this process.
//
//   auto broker = warren::Broker::open({.data_dir = "/var/lib/app/queue"});
//   auto ch = broker->channel();
//   ch.queue_declare("tasks", {.durable = true});
//
// open() recovers durable exchanges, queues, bindings and persistent messages; messages
// that were delivered but not acknowledged before come back with redelivered=true.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "warren/channel.h"
#include "warren/connection.h"
#include "warren/export.h"
#include "warren/options.h"
#include "warren/queue.h"
#include "warren/shovel.h"
#include "warren/user.h"

namespace warren {

namespace api {
class BrokerHandle;
}

class WARREN_EXPORT Broker {
 public:
  // Throws warren::Error if the store cannot be opened (locked by another process,
  // written by an incompatible version, damaged).
  static std::unique_ptr<Broker> open(const BrokerOptions& options);
  ~Broker();  // closes every connection, then the store
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // A channel on the broker's own connection.
  Channel channel();
  // A separate connection: exclusive queues belong to one connection.
  Connection connect(std::string name = "in-process");

  std::vector<QueueInfo> list_queues();

  // Moves (or copies) the ready messages of queue `from`, oldest first, into queue `to`; with
  // `to` empty, each goes back to the queue its newest x-death entry names (a dead-letter
  // queue replayed to where its messages died). Moves happen in batches of 1000, each one
  // commit: after a crash every message is in exactly one of the queues. Returns how many
  // once they are on disk. A missing queue throws 404 (after the moves before it are done).
  uint64_t replay(std::string_view from, std::string_view to = {},
                  const ReplayOptions& options = {});

  // Shovels (warren/shovel.h): declared or replaced by vhost and name, stored with the
  // broker's data, running at once and again whenever this data directory is opened. A
  // definition that breaks RabbitMQ's rules throws warren::Error (406, RabbitMQ's text).
  void declare_shovel(const ShovelDefinition& definition);
  // False if there is no such shovel.
  bool delete_shovel(std::string_view name, std::string_view vhost = "/");
  std::vector<ShovelStatus> shovels();

  // Users (warren/user.h), stored with the broker's data: adds or replaces one. A bad
  // permission pattern or hash throws warren::Error (406).
  void put_user(const UserDefinition& user);
  bool delete_user(std::string_view name);  // false if there is none
  std::vector<UserDefinition> users();      // with password hashes, never passwords

  // The internals, for the AMQP server, tools and tests built on this library.
  explicit Broker(std::shared_ptr<api::BrokerHandle> handle);
  const std::shared_ptr<api::BrokerHandle>& handle() const { return handle_; }

 private:
  std::shared_ptr<api::BrokerHandle> handle_;
  std::unique_ptr<Connection> default_connection_;
};

}  // namespace warren
