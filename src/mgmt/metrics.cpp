#include "mgmt/metrics.h"

#include <fmt/format.h>
#include <sys/statvfs.h>

#include <cstdio>
#include <vector>

#include "shovel/manager.h"

namespace warren::mgmt {

namespace {

std::string label_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

class Exposition {
 public:
  // One metric family: its TYPE and HELP lines, then samples added with sample().
  Exposition& family(std::string_view name, std::string_view type, std::string_view help) {
    fmt::format_to(std::back_inserter(out_), "# TYPE {} {}\n# HELP {} {}\n", name, type, name,
                   help);
    return *this;
  }
  Exposition& sample(std::string_view name, double value, std::string_view labels = {}) {
    if (labels.empty())
      fmt::format_to(std::back_inserter(out_), "{} {}\n", name, value);
    else
      fmt::format_to(std::back_inserter(out_), "{}{{{}}} {}\n", name, labels, value);
    return *this;
  }
  Exposition& gauge(std::string_view name, std::string_view help, double value) {
    return family(name, "gauge", help).sample(name, value);
  }
  Exposition& counter(std::string_view name, std::string_view help, double value) {
    return family(name, "counter", help).sample(name, value);
  }
  Exposition& histogram(std::string_view name, std::string_view help,
                        const storage::LatencyHistogram& h) {
    family(name, "histogram", help);
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= storage::LatencyHistogram::kBounds.size(); ++i) {
      cumulative += h.bucket(i);
      std::string le = i < storage::LatencyHistogram::kBounds.size()
                           ? fmt::format("{}", storage::LatencyHistogram::kBounds[i])
                           : "+Inf";
      sample(fmt::format("{}_bucket", name), double(cumulative), fmt::format("le=\"{}\"", le));
    }
    sample(fmt::format("{}_sum", name), h.sum_seconds());
    sample(fmt::format("{}_count", name), double(cumulative));
    return *this;
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

// One sample per shovel and figure; the state as RabbitMQ names it, 1 for the current one.
void shovel_metrics(Exposition& e, const shovel::ShovelManager& shovels) {
  const auto entries = shovels.list();
  auto labels = [](const shovel::ShovelManager::Entry& s) {
    return fmt::format("vhost=\"{}\",shovel=\"{}\"", label_value(s.vhost), label_value(s.name));
  };
  e.family("warren_shovel_state", "gauge", "1 for the state each shovel is in");
  for (const auto& s : entries)
    for (const char* state : {"starting", "running", "terminated"})
      e.sample("warren_shovel_state", s.status.state == state ? 1 : 0,
               fmt::format("{},state=\"{}\"", labels(s), state));
  struct Figure {
    const char* name;
    const char* type;
    const char* help;
    double (*value)(const ShovelStatus&);
  };
  const Figure figures[] = {
      {"warren_shovel_forwarded_total", "counter", "Messages the destination accepted",
       [](const ShovelStatus& s) { return double(s.forwarded); }},
      {"warren_shovel_resent_total", "counter",
       "Messages sent again after a break (the possible duplicates)",
       [](const ShovelStatus& s) { return double(s.resent); }},
      {"warren_shovel_in_flight_messages", "gauge", "Messages sent and not yet confirmed",
       [](const ShovelStatus& s) { return double(s.in_flight); }},
      {"warren_shovel_pending_messages", "gauge", "Messages waiting in a local source queue",
       [](const ShovelStatus& s) { return double(s.pending.value_or(0)); }},
      {"warren_shovel_last_connected_timestamp_seconds", "gauge",
       "When both ends were last connected (0: never)",
       [](const ShovelStatus& s) { return double(s.last_connected_ms) / 1000; }},
  };
  for (const Figure& f : figures) {
    e.family(f.name, f.type, f.help);
    for (const auto& s : entries) e.sample(f.name, f.value(s.status), labels(s));
  }
}

struct QueueFigures {
  std::string vhost, name;
  uint64_t ready = 0, unacked = 0, consumers = 0, published = 0, delayed = 0, duplicates = 0;
};

std::vector<QueueFigures> queue_figures(core::Engine& engine) {
  std::vector<QueueFigures> out;
  for (const auto& [vname, vhost] : engine.vhosts())
    for (const auto& [qname, q] : vhost->queues)
      out.push_back({vname, qname, q->ready(), q->unacked(), q->consumers.size(), q->stats.publish,
                     q->delayed(), q->duplicates()});
  return out;
}

void queue_metrics(Exposition& e, const std::vector<QueueFigures>& queues, bool per_object) {
  struct Metric {
    const char* name;
    const char* type;
    const char* help;
    uint64_t QueueFigures::*field;
  };
  static constexpr Metric kMetrics[] = {
      {"rabbitmq_queue_messages_ready", "gauge", "Messages ready to be delivered to consumers",
       &QueueFigures::ready},
      {"rabbitmq_queue_messages_unacked", "gauge",
       "Messages delivered to consumers but not yet acknowledged", &QueueFigures::unacked},
      {"rabbitmq_queue_consumers", "gauge", "Consumers on a queue", &QueueFigures::consumers},
      {"rabbitmq_queue_messages_published_total", "counter",
       "Total number of messages published to queues", &QueueFigures::published},
  };
  for (const Metric& m : kMetrics) {
    e.family(m.name, m.type, m.help);
    if (per_object) {
      for (const auto& q : queues)
        e.sample(
            m.name, double(q.*m.field),
            fmt::format("vhost=\"{}\",queue=\"{}\"", label_value(q.vhost), label_value(q.name)));
    } else {
      uint64_t sum = 0;
      for (const auto& q : queues) sum += q.*m.field;
      e.sample(m.name, double(sum));
    }
  }
  e.family("rabbitmq_queue_messages", "gauge",
           "Sum of ready and unacknowledged messages - total queue depth");
  if (per_object) {
    for (const auto& q : queues)
      e.sample("rabbitmq_queue_messages", double(q.ready + q.unacked),
               fmt::format("vhost=\"{}\",queue=\"{}\"", label_value(q.vhost), label_value(q.name)));
  } else {
    uint64_t sum = 0;
    for (const auto& q : queues) sum += q.ready + q.unacked;
    e.sample("rabbitmq_queue_messages", double(sum));
  }
}

}  // namespace

uint64_t disk_available(const std::string& dir) {
  struct statvfs s {};
  if (dir.empty() || statvfs(dir.c_str(), &s) != 0) return 0;
  return uint64_t(s.f_bavail) * s.f_frsize;
}

std::string prometheus_metrics(core::Engine& engine, bool per_object,
                               const shovel::ShovelManager* shovels) {
  Exposition e;
  const auto queues = queue_figures(engine);
  uint64_t channels = 0, consumers = 0, delayed = 0, duplicates = 0;
  for (const auto& c : engine.connections()) channels += c->channels.size();
  for (const auto& q : queues) {
    consumers += q.consumers;
    delayed += q.delayed;
    duplicates += q.duplicates;
  }
  e.family("rabbitmq_build_info", "untyped", "RabbitMQ & Erlang/OTP version info")
      .sample("rabbitmq_build_info", 1,
              "rabbitmq_version=\"3.10.8\",product=\"Warren\",product_version=\"0.1.0\"");
  e.family("rabbitmq_identity_info", "untyped", "RabbitMQ node & cluster identity info")
      .sample("rabbitmq_identity_info", 1,
              "rabbitmq_node=\"warren@localhost\",rabbitmq_cluster=\"warren\"");
  e.gauge("rabbitmq_connections", "Connections currently open",
          double(engine.connections().size()));
  e.gauge("rabbitmq_channels", "Channels currently open", double(channels));
  e.gauge("rabbitmq_consumers", "Consumers currently connected", double(consumers));
  e.gauge("rabbitmq_queues", "Queues available", double(queues.size()));
  queue_metrics(e, queues, per_object);

  const core::Engine::Counters& c = engine.counters;
  struct Global {
    const char* name;
    const char* help;
    uint64_t value;
    bool per_queue_type = false;  // labelled with the queue type too, as RabbitMQ does
  };
  const Global globals[] = {
      {"received", "Total number of messages received from publishers", c.received},
      {"received_confirm",
       "Total number of messages received from publishers expecting confirmations",
       c.received_confirm},
      {"confirmed", "Total number of messages confirmed to publishers", c.confirmed},
      {"routed", "Total number of messages routed to queues or streams", c.routed},
      {"unroutable_dropped",
       "Total number of messages published as non-mandatory into an exchange and dropped as "
       "unroutable",
       c.unroutable_dropped},
      {"unroutable_returned",
       "Total number of messages published as mandatory into an exchange and returned to the "
       "publisher as unroutable",
       c.unroutable_returned},
      {"delivered", "Total number of messages delivered to consumers", c.delivered, true},
      {"redelivered", "Total number of messages redelivered to consumers", c.redelivered, true},
      {"acknowledged", "Total number of messages acknowledged by consumers", c.acknowledged, true},
      {"get_empty", "Total number of times basic.get operations fetched no message", c.get_empty,
       true},
  };
  for (const Global& g : globals) {
    const std::string name = fmt::format("rabbitmq_global_messages_{}_total", g.name);
    e.family(name, "counter", g.help)
        .sample(name, double(g.value),
                g.per_queue_type ? "protocol=\"amqp091\",queue_type=\"rabbit_classic_queue\""
                                 : "protocol=\"amqp091\"");
  }
  for (const char* reason : {"expired", "rejected", "maxlen", "delivery_limit"}) {
    auto it = c.dead_lettered.find(reason);
    const std::string name = fmt::format("rabbitmq_global_messages_dead_lettered_{}_total", reason);
    e.family(name, "counter",
             fmt::format("Total number of messages dead-lettered due to {}", reason))
        .sample(name, double(it == c.dead_lettered.end() ? 0 : it->second),
                "queue_type=\"rabbit_classic_queue\",dead_letter_strategy=\"at_most_once\"");
  }
  e.gauge("rabbitmq_process_resident_memory_bytes", "Memory used in bytes",
          double(core::resident_memory()));
  e.gauge("rabbitmq_disk_space_available_bytes", "Disk space available in bytes",
          double(disk_available(engine.options().data_dir)));
  e.gauge("rabbitmq_alarms_memory_used_watermark", "Is set to 1 when the memory alarm is in effect",
          engine.memory_alarm() ? 1 : 0);
  e.gauge("rabbitmq_alarms_free_disk_space_watermark",
          "Is set to 1 when the disk alarm is in effect", engine.disk_alarm() ? 1 : 0);

  // Warren's own.
  const storage::StoreStats& s = engine.store().stats();
  e.histogram("warren_commit_seconds",
              "Time to commit one group of operations (journal, LMDB, sync)", s.commit_seconds);
  e.histogram("warren_journal_write_seconds",
              "Time to append (and sync) one commit's journal record", s.journal_write_seconds);
  e.counter("warren_commits_total", "Commits written", double(s.commits.load()));
  e.counter("warren_messages_committed_total",
            "Messages written by those commits (per commit: divide by "
            "warren_commits_total)",
            double(s.message_puts.load()));
  e.counter("warren_checkpoints_total", "Checkpoints of the store", double(s.checkpoints.load()));
  e.gauge("warren_map_used_bytes", "Bytes of the store's map in use",
          double(engine.store().map_used()));
  e.gauge("warren_map_limit_bytes", "The most the store's map may grow to",
          double(engine.store().map_limit()));
  e.counter("warren_duplicates_dropped_total", "Publishes x-message-deduplication kept out",
            double(duplicates));
  e.gauge("warren_messages_delayed", "Messages waiting for a delayed retry (x-requeue-delay)",
          double(delayed));
  e.counter("warren_messages_expired_total", "Messages whose TTL ran out", double(c.expired));
  e.family("warren_messages_dead_lettered_total", "counter", "Messages dead-lettered, by reason");
  for (const auto& [reason, count] : c.dead_lettered)
    e.sample("warren_messages_dead_lettered_total", double(count),
             fmt::format("reason=\"{}\"", label_value(reason)));
  if (shovels) shovel_metrics(e, *shovels);
  return e.take();
}

}  // namespace warren::mgmt
