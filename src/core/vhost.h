// A virtual host: its exchanges and queues, and every declaration rule RabbitMQ applies to
// them. Durable definitions are written through the engine's writer.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "core/errors.h"
#include "core/exchange.h"
#include "core/queue.h"
#include "warren/exchange.h"
#include "warren/queue.h"

namespace warren::core {

class Engine;
struct Connection;

class Vhost {
 public:
  Vhost(Engine& engine, std::string name);
  const std::string name;
  std::unordered_map<std::string, std::shared_ptr<Exchange>> exchanges;
  std::unordered_map<std::string, std::shared_ptr<Queue>> queues;

  void create_default_exchanges();

  // Each writes what it changes durably into `batch`.
  // An empty name declares a server-named queue: `server_name` if given (the channel picks
  // it first, to check the user may configure it), else a new amq.gen- name.
  Result<QueueDeclareOk> declare_queue(Connection& conn, std::string_view name,
                                       const QueueOptions& options, WriteBatch& batch,
                                       std::string_view server_name = {});
  Result<uint32_t> delete_queue(Connection& conn, std::string_view name,
                                const QueueDeleteOptions& options, WriteBatch& batch);
  Result<uint32_t> purge_queue(Connection& conn, std::string_view name, WriteBatch& batch);
  Status declare_exchange(std::string_view name, std::string_view type,
                          const ExchangeOptions& options, WriteBatch& batch);
  Status delete_exchange(std::string_view name, bool if_unused, WriteBatch& batch);
  Status bind(const Destination& destination, std::string_view source, std::string_view key,
              const FieldTable& args, Connection& conn, MethodId m, WriteBatch& batch);
  Status unbind(const Destination& destination, std::string_view source, std::string_view key,
                const FieldTable& args, Connection& conn, MethodId m, WriteBatch& batch);

  // The queue, if it exists and this connection may use it (404 / 405 otherwise).
  Result<std::shared_ptr<Queue>> usable_queue(Connection& conn, std::string_view name, MethodId m);
  std::shared_ptr<Exchange> find_exchange(std::string_view name) const;

  // Every queue the message reaches through `exchange`, once each: exchange-to-exchange
  // bindings are followed, then the alternate exchange if nothing matched.
  void route(const Exchange& exchange, std::string_view routing_key, const FieldTable* headers,
             std::vector<std::shared_ptr<Queue>>& out) const;

  // Removes every queue, exchange and binding, durable records included (the vhost is
  // being deleted; its connections are gone already).
  void remove_all(WriteBatch& batch);
  // Removes a queue with everything that refers to it; consumers are cancelled.
  void remove_queue(const std::shared_ptr<Queue>& queue, WriteBatch& batch);
  // Deletes an auto-delete queue once its last consumer is gone.
  void consumer_left(const std::shared_ptr<Queue>& queue, WriteBatch& batch);

  // Recovery: definitions read back from the store.
  void restore_exchange(std::shared_ptr<Exchange> exchange);
  void restore_queue(std::shared_ptr<Queue> queue);
  void restore_binding(const std::string& source, Binding binding);

 private:
  // The source exchange of a (un)binding, once both ends are known and usable.
  Result<std::shared_ptr<Exchange>> binding_source(const Destination& d, std::string_view source,
                                                   Connection& conn, MethodId m);
  bool binding_is_durable(const Exchange& source, const Destination& d) const;
  void persist_exchange(const Exchange& x, WriteBatch& batch);
  void persist_binding(const Exchange& source, const Binding& b, bool add, WriteBatch& batch);
  void persist_queue(const Queue& q, WriteBatch& batch);
  // Drops every binding to the destination; auto-delete sources left unbound go too.
  void remove_bindings_to(const Destination& d, WriteBatch& batch);
  void drop_exchange(const std::string& name, WriteBatch& batch);
  void route_into(const Exchange& x, std::string_view key, const FieldTable* headers,
                  std::vector<const Exchange*>& seen,
                  std::vector<std::shared_ptr<Queue>>& out) const;

  Engine& engine_;
};

}  // namespace warren::core
