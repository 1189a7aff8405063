// Queue declaration options and results.
#pragma once

#include <cstdint>
#include <string>

#include "warren/field_table.h"

namespace warren {

struct QueueOptions {
  bool passive = false;      // only check that it exists (404 if not)
  bool durable = false;      // the queue and its persistent messages survive a restart
  bool exclusive = false;    // owned by this connection, deleted with it
  bool auto_delete = false;  // deleted when its last consumer goes
  FieldTable arguments = {};
};

struct QueueDeclareOk {
  std::string queue = {};      // the name, server-generated ("amq.gen-...") when declared as ""
  uint32_t message_count = 0;  // ready messages
  uint32_t consumer_count = 0;
};

struct QueueDeleteOptions {
  bool if_unused = false;  // refuse (406) while the queue has consumers
  bool if_empty = false;   // refuse (406) while the queue has ready messages
};

struct ReplayOptions {
  std::string vhost = "/";
  uint64_t max_messages = UINT64_MAX;  // the first N ready messages
  bool copy = false;                   // leave the originals where they are
};

// What `warrenctl list_queues` and the management API show of a queue.
struct QueueInfo {
  std::string vhost = {};
  std::string name = {};
  bool durable = false;
  uint64_t messages_ready = 0;
  uint64_t messages_unacknowledged = 0;
  uint32_t consumers = 0;
  uint64_t messages_delayed = 0;  // returned with x-requeue-delay, not ready yet
  uint64_t duplicates = 0;        // publishes x-message-deduplication kept out, since start
};

}  // namespace warren
