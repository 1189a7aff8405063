// Prometheus metrics in the text exposition format, with the names, types and labels of
// RabbitMQ's rabbitmq_prometheus plugin (so its Grafana dashboards and alerts work), plus
// Warren's own as warren_*. Loop thread.
#pragma once

#include <string>

#include "core/engine.h"

namespace warren::shovel {
class ShovelManager;
}

namespace warren::mgmt {

// /metrics: broker-wide figures (queue figures summed); /metrics/per-object: the queue
// figures per queue, labelled {vhost, queue}, as RabbitMQ splits them.
// With shovels, /metrics also has warren_shovel_* per shovel, labelled {vhost, shovel}.
// Bytes free for an unprivileged user on the file system holding `dir` (0 if unknown).
uint64_t disk_available(const std::string& dir);

std::string prometheus_metrics(core::Engine& engine, bool per_object,
                               const shovel::ShovelManager* shovels = nullptr);

}  // namespace warren::mgmt
