#include "core/vhost.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/args.h"
#include "core/channel.h"
#include "core/engine.h"
#include "storage/keys.h"
#include "storage/records.h"
#include "wire/field_codec.h"

namespace warren::core {

using storage::Db;
using storage::Op;

namespace {

constexpr std::pair<const char*, const char*> kDefaultExchanges[] = {
    {"", "direct"},
    {"amq.direct", "direct"},
    {"amq.fanout", "fanout"},
    {"amq.topic", "topic"},
    {"amq.headers", "headers"},
    {"amq.match", "headers"},
    {"amq.rabbitmq.trace", "topic"},
};

Status default_exchange_refused(MethodId m) {
  return error(ReplyCode::access_refused, "operation not permitted on the default exchange", m);
}

Status name_too_long(MethodId m) {
  return error(ReplyCode::precondition_failed, "name longer than 255 characters", m);
}

std::string_view bool_text(bool b) { return b ? "'true'" : "'false'"; }

}  // namespace

Vhost::Vhost(Engine& engine, std::string name) : name(std::move(name)), engine_(engine) {}

void Vhost::create_default_exchanges() {
  for (auto [xname, type] : kDefaultExchanges) {
    auto x = std::make_shared<Exchange>();
    x->name = xname;
    x->type_name = type;
    x->type = *Exchange::parse_type(type);
    x->durable = true;
    x->internal = std::string_view(xname) == "amq.rabbitmq.trace";
    exchanges[x->name] = std::move(x);
  }
}

std::shared_ptr<Exchange> Vhost::find_exchange(std::string_view xname) const {
  auto it = exchanges.find(std::string(xname));
  return it == exchanges.end() ? nullptr : it->second;
}

Result<std::shared_ptr<Queue>> Vhost::usable_queue(Connection& conn, std::string_view qname,
                                                   MethodId m) {
  auto it = queues.find(std::string(qname));
  if (it == queues.end()) return no_queue(name, qname, m);
  if (it->second->exclusive && it->second->owner != &conn) return queue_locked(name, qname, m);
  return it->second;
}

// ---- queues ---------------------------------------------------------------------------

Result<QueueDeclareOk> Vhost::declare_queue(Connection& conn, std::string_view qname,
                                            const QueueOptions& o, WriteBatch& batch,
                                            std::string_view server_name) {
  const MethodId m = method::queue_declare;
  if (qname.size() > 255) return name_too_long(m);
  std::string actual(qname);
  if (actual.empty() && !o.passive)
    actual = server_name.empty() ? engine_.random_name("amq.gen-") : std::string(server_name);
  auto it = queues.find(actual);
  if (it == queues.end()) {
    if (o.passive) return no_queue(name, actual, m);
    if (qname.starts_with("amq."))
      return error(ReplyCode::access_refused,
                   fmt::format("queue name '{}' contains reserved prefix 'amq.*'", qname), m);
    if (qname.empty())
      if (const FieldValue* type = o.arguments.find("x-queue-type");
          type && type->as<std::string>() && *type->as<std::string>() == "quorum")
        return error(ReplyCode::precondition_failed,
                     "Cannot declare a server-named queue for type rabbit_quorum_queue", m);
    auto q = std::make_shared<Queue>(engine_, engine_.allocate_queue_id(), name, actual);
    q->durable = o.durable;
    q->exclusive = o.exclusive;
    q->auto_delete = o.auto_delete;
    q->arguments = o.arguments;
    if (Status s = apply_queue_arguments(*q, o.arguments); !s) return s;
    if (o.exclusive) {
      q->owner = &conn;
      conn.exclusive_queues.push_back(q);
    }
    queues[actual] = q;
    engine_.register_queue(q);
    q->touch();
    // Exclusive queues die with their connection, so a restart never brings them back.
    if (q->durable && !q->exclusive) {
      persist_queue(*q, batch);
      // Committed with the declaration, so it is on disk before any delivery needs it.
      q->add_delivered_marks_for_open(batch);
    }
    // Every queue is bound to the default exchange under its own name; that binding is
    // implicit (see route()), so nothing is stored for it.
    return QueueDeclareOk{actual, 0, 0};
  }
  Queue& q = *it->second;
  if (q.exclusive && q.owner != &conn) return queue_locked(name, actual, m);
  if (!o.passive) {
    if (q.exclusive != o.exclusive) return queue_locked(name, actual, m);
    if (q.durable != o.durable)
      return inequivalent_arg("durable", "queue", actual, name, bool_text(o.durable),
                              bool_text(q.durable), m);
    if (q.auto_delete != o.auto_delete)
      return inequivalent_arg("auto_delete", "queue", actual, name, bool_text(o.auto_delete),
                              bool_text(q.auto_delete), m);
    if (Status s = check_queue_args_equivalent(q.arguments, o.arguments, actual, name); !s)
      return s;
  }
  q.touch();  // any declaration is a use, a passive one too (as RabbitMQ counts it)
  return QueueDeclareOk{actual, uint32_t(q.ready()), uint32_t(q.consumers.size())};
}

Result<uint32_t> Vhost::delete_queue(Connection& conn, std::string_view qname,
                                     const QueueDeleteOptions& o, WriteBatch& batch) {
  const MethodId m = method::queue_delete;
  auto it = queues.find(std::string(qname));
  if (it == queues.end()) return uint32_t{0};
  auto q = it->second;
  if (q->exclusive && q->owner != &conn) return queue_locked(name, qname, m);
  if (o.if_unused && !q->consumers.empty())
    return error(ReplyCode::precondition_failed, resource("queue", qname, name) + " in use", m);
  if (o.if_empty && q->ready() > 0)
    return error(ReplyCode::precondition_failed, resource("queue", qname, name) + " not empty", m);
  auto count = uint32_t(q->ready());
  remove_queue(q, batch);
  return count;
}

Result<uint32_t> Vhost::purge_queue(Connection& conn, std::string_view qname, WriteBatch& batch) {
  auto q = usable_queue(conn, qname, method::queue_purge);
  if (!q.ok()) return q.status();
  return q.value()->purge(batch);
}

void Vhost::remove_queue(const std::shared_ptr<Queue>& q, WriteBatch& batch) {
  if (q->deleted) return;
  // Bindings first: whether one is durable depends on looking its queue up.
  remove_bindings_to(Destination{true, q->name}, batch);
  queues.erase(q->name);
  auto consumers = std::move(q->consumers);
  q->consumers.clear();
  for (auto& c : consumers) c->channel->consumer_cancelled_by_broker(*c);
  if (q->durable && !q->exclusive) batch.add(Op::del(Db::queues, storage::name_key(name, q->name)));
  q->drop_storage(batch);
  engine_.unregister_queue(q->id);
}

void Vhost::consumer_left(const std::shared_ptr<Queue>& q, WriteBatch& batch) {
  if (!q->consumers.empty() || q->deleted) return;
  if (q->auto_delete && q->had_consumer)
    remove_queue(q, batch);
  else
    q->touch();  // x-expires counts from the last consumer's leaving
}

void Vhost::persist_queue(const Queue& q, WriteBatch& batch) {
  storage::QueueRecord r{q.id, name, q.name, q.auto_delete, wire::encode_table(q.arguments)};
  batch.add(Op::put(Db::queues, storage::name_key(name, q.name), storage::encode(r)));
}

// ---- exchanges ------------------------------------------------------------------------

Status Vhost::declare_exchange(std::string_view xname, std::string_view type,
                               const ExchangeOptions& o, WriteBatch& batch) {
  const MethodId m = method::exchange_declare;
  if (xname.size() > 255) return name_too_long(m);
  if (xname.empty()) return default_exchange_refused(m);
  auto existing = find_exchange(xname);
  if (o.passive) return existing ? Status{} : no_exchange(name, xname, m);
  auto parsed = Exchange::parse_type(type);
  if (!parsed)
    return error(ReplyCode::command_invalid, fmt::format("unknown exchange type '{}'", type), m);
  if (!existing) {
    if (xname.starts_with("amq."))
      return error(ReplyCode::access_refused,
                   fmt::format("exchange name '{}' contains reserved prefix 'amq.*'", xname), m);
    auto x = std::make_shared<Exchange>();
    x->name = xname;
    x->type_name = type;
    x->type = *parsed;
    x->durable = o.durable;
    x->auto_delete = o.auto_delete;
    x->internal = o.internal;
    x->arguments = o.arguments;
    exchanges[x->name] = x;
    if (x->durable) persist_exchange(*x, batch);
    return {};
  }
  const Exchange& x = *existing;
  auto mismatch = [&](std::string_view arg, std::string_view got, std::string_view cur) {
    return inequivalent_arg(arg, "exchange", xname, name, got, cur, m);
  };
  if (x.type_name != type)
    return mismatch("type", fmt::format("'{}'", type), fmt::format("'{}'", x.type_name));
  if (x.durable != o.durable)
    return mismatch("durable", bool_text(o.durable), bool_text(x.durable));
  if (x.auto_delete != o.auto_delete)
    return mismatch("auto_delete", bool_text(o.auto_delete), bool_text(x.auto_delete));
  if (x.internal != o.internal)
    return mismatch("internal", bool_text(o.internal), bool_text(x.internal));
  const FieldValue* cur_ae = x.arguments.find("alternate-exchange");
  const FieldValue* new_ae = o.arguments.find("alternate-exchange");
  if (!same_arg_value(cur_ae, new_ae))
    return mismatch("alternate-exchange", describe_arg(new_ae), describe_arg(cur_ae));
  return {};
}

Status Vhost::delete_exchange(std::string_view xname, bool if_unused, WriteBatch& batch) {
  const MethodId m = method::exchange_delete;
  if (xname.empty()) return default_exchange_refused(m);
  auto x = find_exchange(xname);
  if (!x) return {};
  if (xname.starts_with("amq."))
    return error(
        ReplyCode::access_refused,
        fmt::format("deletion of system exchange '{}' in vhost '{}' not allowed", xname, name), m);
  if (if_unused && !x->bindings.empty())
    return error(ReplyCode::precondition_failed, resource("exchange", xname, name) + " in use", m);
  drop_exchange(x->name, batch);
  return {};
}

void Vhost::remove_all(WriteBatch& batch) {
  std::vector<std::shared_ptr<Queue>> all_queues;
  for (const auto& [qname, q] : queues) all_queues.push_back(q);
  for (const auto& q : all_queues) remove_queue(q, batch);
  std::vector<std::string> declared;
  for (const auto& [xname, x] : exchanges) {
    if (!xname.empty() && !xname.starts_with("amq.")) declared.push_back(xname);
    else  // the predeclared ones stay with the vhost object, but their bindings go from the store
      for (const auto& b : x->bindings)
        if (binding_is_durable(*x, b.destination)) persist_binding(*x, b, false, batch);
  }
  for (const auto& xname : declared) drop_exchange(xname, batch);
}

void Vhost::drop_exchange(const std::string& xname, WriteBatch& batch) {
  auto x = find_exchange(xname);
  if (!x) return;
  // Bindings first: whether one is durable depends on looking its destination up.
  remove_bindings_to(Destination{false, xname}, batch);
  for (const auto& b : x->bindings)
    if (binding_is_durable(*x, b.destination)) persist_binding(*x, b, false, batch);
  exchanges.erase(xname);
  if (x->durable) batch.add(Op::del(Db::exchanges, storage::name_key(name, xname)));
}

void Vhost::persist_exchange(const Exchange& x, WriteBatch& batch) {
  storage::ExchangeRecord r{name,          x.name,     x.type_name,
                            x.auto_delete, x.internal, wire::encode_table(x.arguments)};
  batch.add(Op::put(Db::exchanges, storage::name_key(name, x.name), storage::encode(r)));
}

// ---- bindings -------------------------------------------------------------------------

bool Vhost::binding_is_durable(const Exchange& source, const Destination& d) const {
  if (!source.durable) return false;
  if (d.is_queue) {
    auto it = queues.find(d.name);
    return it != queues.end() && it->second->durable && !it->second->exclusive;
  }
  auto x = find_exchange(d.name);
  return x && x->durable;
}

void Vhost::persist_binding(const Exchange& source, const Binding& b, bool add, WriteBatch& batch) {
  storage::BindingRecord r{name,
                           source.name,
                           b.destination.is_queue,
                           b.destination.name,
                           b.routing_key,
                           wire::encode_table(b.arguments)};
  auto key = storage::binding_key(r);
  batch.add(add ? Op::put(Db::bindings, key, storage::encode(r)) : Op::del(Db::bindings, key));
}

Result<std::shared_ptr<Exchange>> Vhost::binding_source(const Destination& d,
                                                        std::string_view source, Connection& conn,
                                                        MethodId m) {
  if (source.empty() || (!d.is_queue && d.name.empty())) return default_exchange_refused(m);
  if (d.is_queue) {
    auto q = usable_queue(conn, d.name, m);
    if (!q.ok()) return q.status();
  } else if (!find_exchange(d.name)) {
    return no_exchange(name, d.name, m);
  }
  auto x = find_exchange(source);
  if (!x) return no_exchange(name, source, m);
  return x;
}

Status Vhost::bind(const Destination& d, std::string_view source, std::string_view key,
                   const FieldTable& args, Connection& conn, MethodId m, WriteBatch& batch) {
  auto source_x = binding_source(d, source, conn, m);
  if (!source_x.ok()) return source_x.status();
  auto& x = source_x.value();
  Binding b{d, std::string(key), args, HeadersMatch::all};
  if (x->type == Exchange::Type::headers)
    if (Status s = parse_headers_match(args, &b.match); !s) return s.with_method(m.first, m.second);
  bool durable = binding_is_durable(*x, d);
  if (x->add_binding(b) && durable) persist_binding(*x, b, true, batch);
  return {};
}

Status Vhost::unbind(const Destination& d, std::string_view source, std::string_view key,
                     const FieldTable& args, Connection& conn, MethodId m, WriteBatch& batch) {
  auto source_x = binding_source(d, source, conn, m);
  // Unbinding is idempotent, as in RabbitMQ 3.10: no queue, exchange or binding, nothing to do.
  if (!source_x.ok()) return source_x.status().code() == ReplyCode::not_found ? Status{} : source_x.status();
  auto& x = source_x.value();
  Binding b{d, std::string(key), args, HeadersMatch::all};
  bool durable = binding_is_durable(*x, d);
  if (x->remove_binding(b)) {
    if (durable) persist_binding(*x, b, false, batch);
    if (x->auto_delete && x->bindings.empty()) drop_exchange(x->name, batch);
  }
  return {};
}

void Vhost::remove_bindings_to(const Destination& d, WriteBatch& batch) {
  std::vector<std::string> emptied;
  for (auto& [xname, x] : exchanges) {
    auto& bs = x->bindings;
    bool removed = false;
    for (auto it = bs.begin(); it != bs.end();) {
      if (it->destination == d) {
        if (binding_is_durable(*x, d)) persist_binding(*x, *it, false, batch);
        it = bs.erase(it);
        removed = true;
      } else {
        ++it;
      }
    }
    if (removed && x->auto_delete && bs.empty()) emptied.push_back(xname);
  }
  for (const auto& xname : emptied) drop_exchange(xname, batch);
}

// ---- routing --------------------------------------------------------------------------

void Vhost::route(const Exchange& x, std::string_view key, const FieldTable* headers,
                  std::vector<std::shared_ptr<Queue>>& out) const {
  std::vector<const Exchange*> seen;
  route_into(x, key, headers, seen, out);
}

void Vhost::route_into(const Exchange& x, std::string_view key, const FieldTable* headers,
                       std::vector<const Exchange*>& seen,
                       std::vector<std::shared_ptr<Queue>>& out) const {
  if (std::find(seen.begin(), seen.end(), &x) != seen.end()) return;
  seen.push_back(&x);
  size_t before = out.size();
  auto add_queue = [&](const std::string& qname) {
    auto it = queues.find(qname);
    if (it != queues.end() && std::find(out.begin(), out.end(), it->second) == out.end())
      out.push_back(it->second);
  };
  if (x.is_default()) {
    add_queue(std::string(key));
  } else {
    std::vector<const Destination*> hits;
    x.route(key, headers, hits);
    for (const Destination* d : hits) {
      if (d->is_queue)
        add_queue(d->name);
      else if (auto next = find_exchange(d->name))
        route_into(*next, key, headers, seen, out);
    }
  }
  if (out.size() == before)
    if (auto ae = x.alternate_exchange())
      if (auto alt = find_exchange(*ae)) route_into(*alt, key, headers, seen, out);
}

// ---- recovery -------------------------------------------------------------------------

void Vhost::restore_exchange(std::shared_ptr<Exchange> x) { exchanges[x->name] = std::move(x); }

void Vhost::restore_queue(std::shared_ptr<Queue> q) {
  engine_.register_queue(q);
  queues[q->name] = std::move(q);
}

void Vhost::restore_binding(const std::string& source, Binding b) {
  auto x = find_exchange(source);
  bool destination_exists = b.destination.is_queue ? queues.count(b.destination.name) > 0
                                                   : find_exchange(b.destination.name) != nullptr;
  if (!x || !destination_exists) return;
  if (x->type == Exchange::Type::headers) (void)parse_headers_match(b.arguments, &b.match);
  x->add_binding(std::move(b));
}

}  // namespace warren::core
