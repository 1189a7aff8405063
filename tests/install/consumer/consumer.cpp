// A C++ application embedding Warren: a queue on disk, a confirmed publish, a get, and the
// test fixture's server. Prints "ok" and exits 0 when all of it worked.
#include <warren/broker.h>
#include <warren/error.h>
#include <warren/testing.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  auto broker = warren::Broker::open({.data_dir = argv[1]});
  auto ch = broker->channel();
  ch.queue_declare("installed", {.durable = true});
  ch.confirm_select();
  ch.basic_publish("", "installed", {.body = "hello", .properties = {.delivery_mode = 2}});
  if (!ch.wait_for_confirms(std::chrono::seconds(10))) return 1;
  auto got = ch.basic_get("installed", true);
  if (!got || got->message.body != "hello") return 1;
  try {
    ch.queue_declare("missing", {.passive = true});
    return 1;
  } catch (const warren::Error& e) {  // an exception thrown inside the library, caught here
    if (e.code() != warren::ReplyCode::not_found) return 1;
  }
  warren::testing::AmqpServer server;
  if (server.port() == 0) return 1;
  std::printf("ok\n");
  return 0;
}
