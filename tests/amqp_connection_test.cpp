// The AMQP connection state machine over a real engine, byte for byte, without sockets:
// replies that promise durability wait for their commit, and replies keep their order.
#include <gtest/gtest.h>

#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <chrono>
#include <tuple>
#include <vector>

#include "amqp/connection.h"
#include "amqp/frame.h"
#include "faults.h"

namespace warren::amqp {
namespace {

using Method = std::tuple<uint16_t, uint16_t, uint16_t>;  // channel, class, method

class AmqpConnection : public ::testing::Test {
 protected:
  void SetUp() override {
    BrokerOptions options;
    options.durability = Durability::in_memory;
    auto e = core::Engine::open(io, {options, disk});
    ASSERT_TRUE(e.ok()) << e.status().text();
    engine = std::move(e.value());
    token = engine->token();
    token->lock();  // this thread is the broker's loop
    conn = std::make_unique<Connection>(*engine, config, "test", true);
    // As the server's session does: go on with the input left over once replies are out.
    conn->set_resume_listener([this] { asio::post(io, [this] { conn->feed(in); }); });
    disk->open();
    in = std::string(kProtocolHeader);
    ConnectionStartOk start_ok;
    start_ok.mechanism = "PLAIN";
    start_ok.response.value = std::string("\0guest\0guest", 12);
    start_ok.locale = "en_US";
    add(0, start_ok);
    add(0, ConnectionTuneOk{2047, 131072, 0});
    ConnectionOpen open;
    open.virtual_host = "/";
    add(0, open);
    add(1, ChannelOpen{});
    conn->feed(in);
    ASSERT_EQ(methods().back(), Method(1, 20, 11));  // channel.open-ok
  }
  void TearDown() override {
    disk->open();
    conn->on_disconnect();
    conn.reset();
    engine.reset();
    token->unlock();
  }

  template <class M>
  void add(uint16_t channel, const M& m) {
    append_frame(in, FrameType::method, channel, encode_method(m));
  }
  // The methods the connection has sent so far (it keeps them in its output).
  std::vector<Method> methods() {
    std::vector<Method> out;
    FrameParser parser;
    std::string_view rest = conn->output();
    for (;;) {
      Frame f;
      size_t used = 0;
      std::string error;
      if (parser.parse(rest, &f, &used, &error) != FrameParser::Result::frame) break;
      if (f.type == uint8_t(FrameType::method)) {
        auto d = decode_method(f.payload);
        out.emplace_back(f.channel, d.class_id, d.method_id);
      }
      rest.remove_prefix(used);
    }
    return out;
  }
  // Runs the loop until `done` or a deadline.
  template <class F>
  bool run_until(F&& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io.restart();
      io.run_one_for(std::chrono::milliseconds(50));
    }
    return done();
  }

  asio::io_context io;
  std::shared_ptr<testing::StuckDisk> disk = std::make_shared<testing::StuckDisk>();
  std::unique_ptr<core::Engine> engine;
  std::shared_ptr<core::LoopToken> token;
  ServerConfig config;
  std::unique_ptr<Connection> conn;
  std::string in;
};

TEST_F(AmqpConnection, DeclareOkForADurableQueueWaitsForItsCommitAndLaterRepliesWaitBehindIt) {
  size_t before = methods().size();
  disk->hang();
  in.clear();
  QueueDeclare declare;
  declare.queue = "kept";
  declare.durable = true;
  add(1, declare);
  BasicGet get;
  get.queue = "kept";
  add(1, get);
  conn->feed(in);
  io.restart();
  io.poll();
  EXPECT_EQ(methods().size(), before) << "nothing may be answered before the queue is stored";
  EXPECT_TRUE(conn->reading_paused());
  disk->open();
  ASSERT_TRUE(run_until([&] { return methods().size() == before + 2; }));
  auto sent = methods();
  EXPECT_EQ(sent[before], Method(1, 50, 11));      // declare-ok first
  EXPECT_EQ(sent[before + 1], Method(1, 60, 72));  // then get-empty
  EXPECT_FALSE(conn->reading_paused());
}

TEST_F(AmqpConnection, ANonDurableDeclareIsAnsweredAtOnce) {
  size_t before = methods().size();
  disk->hang();
  in.clear();
  QueueDeclare declare;
  declare.queue = "fleeting";
  add(1, declare);
  conn->feed(in);
  ASSERT_EQ(methods().size(), before + 1);
  EXPECT_EQ(methods().back(), Method(1, 50, 11));
}

TEST_F(AmqpConnection, CommitOkWaitsForTheTransactionsCommit) {
  in.clear();
  QueueDeclare declare;
  declare.queue = "q";
  declare.durable = true;
  add(1, declare);
  add(1, TxSelect{});
  conn->feed(in);
  ASSERT_TRUE(run_until([&] { return methods().back() == Method(1, 90, 11); }));
  size_t before = methods().size();
  disk->hang();
  in.clear();
  BasicPublish publish;
  publish.routing_key = "q";
  add(1, publish);
  append_frame(in, FrameType::header, 1, content_header_payload(60, 1, std::string("\x10\x00\x02", 3)));
  append_frame(in, FrameType::body, 1, "x");
  add(1, TxCommit{});
  conn->feed(in);
  io.restart();
  io.poll();
  EXPECT_EQ(methods().size(), before) << "commit-ok before the transaction is stored";
  disk->open();
  ASSERT_TRUE(run_until([&] { return methods().size() == before + 1; }));
  EXPECT_EQ(methods().back(), Method(1, 90, 21));
}

}  // namespace
}  // namespace warren::amqp
