// warren::testing::AmqpServer as a test suite would use it: a real AMQP client (Debian's
// librabbitmq) connects to it over loopback, and the fixture's broker() sees the same data.
#include "warren/testing.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <gtest/gtest.h>

#include <string>

#include "warren/error.h"

namespace {

// (A named variable: g++ 12 warns falsely about `AmqpServer({.port = n})`.)
warren::testing::AmqpServerOptions on_port(uint16_t port) {
  warren::testing::AmqpServerOptions options;
  options.port = port;
  return options;
}

// A librabbitmq connection, logged in, with channel 1 open.
class Client {
 public:
  explicit Client(uint16_t port) : conn_(amqp_new_connection()) {
    amqp_socket_t* socket = amqp_tcp_socket_new(conn_);
    connected_ = amqp_socket_open(socket, "127.0.0.1", port) == AMQP_STATUS_OK;
    if (!connected_) return;
    amqp_rpc_reply_t login =
        amqp_login(conn_, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
    connected_ = login.reply_type == AMQP_RESPONSE_NORMAL;
    if (!connected_) return;
    amqp_channel_open(conn_, 1);
    connected_ = amqp_get_rpc_reply(conn_).reply_type == AMQP_RESPONSE_NORMAL;
  }
  ~Client() {
    if (connected_) {
      amqp_channel_close(conn_, 1, AMQP_REPLY_SUCCESS);
      amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
    }
    amqp_destroy_connection(conn_);
  }
  bool connected() const { return connected_; }

  bool declare(const std::string& queue) {
    amqp_queue_declare(conn_, 1, amqp_cstring_bytes(queue.c_str()), 0, 1, 0, 0, amqp_empty_table);
    return amqp_get_rpc_reply(conn_).reply_type == AMQP_RESPONSE_NORMAL;
  }
  bool publish(const std::string& queue, const std::string& body) {
    return amqp_basic_publish(conn_, 1, amqp_cstring_bytes(""), amqp_cstring_bytes(queue.c_str()),
                              0, 0, nullptr, amqp_cstring_bytes(body.c_str())) == AMQP_STATUS_OK;
  }
  // The body of the next message, "" if none.
  std::string get(const std::string& queue) {
    amqp_rpc_reply_t reply = amqp_basic_get(conn_, 1, amqp_cstring_bytes(queue.c_str()), 1);
    if (reply.reply_type != AMQP_RESPONSE_NORMAL || reply.reply.id != AMQP_BASIC_GET_OK_METHOD)
      return "";
    amqp_message_t message;
    if (amqp_read_message(conn_, 1, &message, 0).reply_type != AMQP_RESPONSE_NORMAL) return "";
    std::string body(static_cast<char*>(message.body.bytes), message.body.len);
    amqp_destroy_message(&message);
    return body;
  }

 private:
  amqp_connection_state_t conn_;
  bool connected_ = false;
};

TEST(AmqpServer, ServesARealClientOnAFreeLoopbackPort) {
  warren::testing::AmqpServer amqp;
  ASSERT_NE(amqp.port(), 0);
  EXPECT_EQ(amqp.url(), "amqp://guest:guest@127.0.0.1:" + std::to_string(amqp.port()) + "/%2F");
  Client client(amqp.port());  // ready as soon as the constructor returned
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.declare("orders"));
  ASSERT_TRUE(client.publish("orders", "order-1"));
  ASSERT_TRUE(client.publish("orders", "order-2"));
  EXPECT_EQ(client.get("orders"), "order-1");

  // The fixture's in-process broker sees what the client did, and its own work is visible
  // to the client.
  auto ch = amqp.broker().channel();
  auto got = ch.basic_get("orders", /*no_ack=*/true);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->message.body, "order-2");
  ch.confirm_select();
  ch.basic_publish("", "orders", {.body = "from-the-test"});
  ASSERT_TRUE(ch.wait_for_confirms(std::chrono::seconds(10)));
  EXPECT_EQ(client.get("orders"), "from-the-test");
}

TEST(AmqpServer, EachFixtureStartsEmptyAndItsPortIsFreedWithIt) {
  uint16_t port;
  {
    warren::testing::AmqpServer first;
    port = first.port();
    Client client(port);
    ASSERT_TRUE(client.connected());
    ASSERT_TRUE(client.declare("left-behind"));
    ASSERT_TRUE(client.publish("left-behind", "x"));
    EXPECT_EQ(first.broker().list_queues().size(), 1u);
  }
  EXPECT_FALSE(Client(port).connected());
  warren::testing::AmqpServer second;
  EXPECT_TRUE(second.broker().list_queues().empty());  // in-memory: nothing carried over
  // The port is free again: a server may take it.
  warren::testing::AmqpServer same_port(on_port(port));
  EXPECT_EQ(same_port.port(), port);
  EXPECT_TRUE(Client(port).connected());
}

TEST(AmqpServer, ATakenPortIsAnErrorNotACrash) {
  warren::testing::AmqpServer first;
  try {
    warren::testing::AmqpServer second(on_port(first.port()));
    FAIL() << "a second server bound the same port";
  } catch (const warren::Error& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(first.port())), std::string::npos)
        << e.what();
  }
}

}  // namespace
