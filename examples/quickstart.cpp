// Publishes with confirms, consumes and acknowledges against a data directory, and says
// what happened. Run it twice: the second run finds what the first left in the queue.
#include <warren/broker.h>
#include <warren/error.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : "warren-example-data";
  try {
    auto broker = warren::Broker::open({.data_dir = dir});
    auto ch = broker->channel();
    auto declared = ch.queue_declare("tasks", {.durable = true});
    std::printf("opened %s: queue 'tasks' holds %u message(s) from earlier runs\n", dir.c_str(),
                declared.message_count);

    ch.confirm_select();
    for (int i = 1; i <= 3; ++i) {
      std::string id = "order:" + std::to_string(10000 + i);
      ch.basic_publish("", "tasks",
                       {.body = "hello " + std::to_string(i),
                        .properties = {.delivery_mode = 2, .message_id = id}});
    }
    bool acked = ch.wait_for_confirms(5s);
    std::printf("published 3 persistent messages: %s\n",
                acked ? "all confirmed (on disk)" : "some refused");

    if (auto d = ch.basic_get("tasks")) {
      std::printf("basic_get: tag %llu, '%s' (%u left)\n", (unsigned long long)d->delivery_tag,
                  d->message.body.c_str(), d->message_count);
      ch.basic_ack(d->delivery_tag);
    }

    std::mutex m;
    std::condition_variable cv;
    int received = 0;
    auto consumer = broker->channel();
    consumer.basic_qos(10);
    consumer.basic_consume("tasks", [&](warren::Delivery d) {
      std::printf("consumed: tag %llu, '%s'%s, message_id %s\n", (unsigned long long)d.delivery_tag,
                  d.message.body.c_str(), d.redelivered ? " (redelivered)" : "",
                  d.message.properties.message_id.value_or("-").c_str());
      consumer.basic_ack(d.delivery_tag);
      std::lock_guard lock(m);
      ++received;
      cv.notify_one();
    });
    std::unique_lock lock(m);
    cv.wait_for(lock, 2s, [&] { return received >= 2; });
    lock.unlock();
    consumer.flush();
    std::printf("acknowledged %d message(s) by consuming; queue now: %llu ready\n", received + 1,
                (unsigned long long)broker->list_queues().front().messages_ready);
  } catch (const warren::Error& e) {
    std::fprintf(stderr, "error %d: %s\n", int(e.code()), e.what());
    return 1;
  }
  return 0;
}
