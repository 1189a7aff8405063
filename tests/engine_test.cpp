// The core engine as a server drives it: one connection per client with its user, and a
// sink that receives what the broker sends on the channel.
#include "core/engine.h"

#include <gtest/gtest.h>

#include <asio/io_context.hpp>

#include "wire/properties_codec.h"

namespace warren::core {
namespace {

struct RecordingSink : ChannelSink {
  std::vector<DeliveryInfo> deliveries;
  std::vector<std::tuple<uint64_t, bool, bool>> confirms;
  std::vector<ReturnInfo> returns;
  std::vector<std::string> cancelled;
  std::vector<Status> closed;
  void on_deliver(DeliveryInfo d) override { deliveries.push_back(std::move(d)); }
  void on_confirm(uint64_t seq, bool multiple, bool ack) override {
    confirms.emplace_back(seq, multiple, ack);
  }
  void on_return(ReturnInfo r) override { returns.push_back(std::move(r)); }
  void on_consumer_cancelled(const std::string& tag) override { cancelled.push_back(tag); }
  void on_closed(const Status& reason) override { closed.push_back(reason); }
};

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto e = Engine::open(io, EngineOptions{{.durability = Durability::in_memory}, nullptr});
    ASSERT_TRUE(e.ok()) << e.status().text();
    engine = std::move(e.value());
    // This thread is the engine's loop: it holds the token throughout, as warrend's does.
    token = engine->token();
    token->lock();
    conn = engine->connect("client", "guest");
    ch = engine->open_channel(*conn, 1, &sink);
  }
  // Runs the loop until the engine has seen every commit so far, then what else it posted.
  void settle() {
    uint64_t target = engine->writer().last_submitted();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (engine->committed() < target && std::chrono::steady_clock::now() < deadline) {
      io.restart();
      io.run_one_for(std::chrono::milliseconds(100));
    }
    io.restart();
    io.poll();
  }
  PublishInput message(std::string body, BasicProperties p = {}) {
    PublishInput in;
    in.routing_key = "q";
    in.properties_wire = wire::encode_properties(p);
    in.properties = std::move(p);
    in.body = std::move(body);
    return in;
  }

  void TearDown() override {
    ch.reset();
    engine.reset();
    token->unlock();
  }

  asio::io_context io;
  std::shared_ptr<LoopToken> token;
  std::unique_ptr<Engine> engine;
  std::shared_ptr<Connection> conn;
  RecordingSink sink;
  std::shared_ptr<Channel> ch;
};

TEST_F(EngineTest, UserIdMustMatchTheLogin) {
  ASSERT_TRUE(ch->queue_declare("q", {}).ok());
  BasicProperties p;
  p.user_id = "bob";
  Status s = ch->basic_publish(message("m", p));
  EXPECT_EQ(
      s.text(),
      "PRECONDITION_FAILED - user_id property set to 'bob' but authenticated user was 'guest'");
  ASSERT_EQ(sink.closed.size(), 1u);
  EXPECT_EQ(sink.closed[0].code(), ReplyCode::precondition_failed);
  EXPECT_FALSE(ch->is_open());
  auto ch2 = engine->open_channel(*conn, 2, &sink);
  p.user_id = "guest";
  EXPECT_TRUE(ch2->basic_publish(message("m", p)));
}

TEST_F(EngineTest, SinkSeesDeliveriesConfirmsReturnsAndCancels) {
  ASSERT_TRUE(ch->queue_declare("q", {.durable = true}).ok());
  ASSERT_TRUE(ch->confirm_select());
  auto tag = ch->basic_consume("q", {.consumer_tag = "c1"});
  ASSERT_TRUE(tag.ok());
  BasicProperties persistent;
  persistent.delivery_mode = 2;
  ASSERT_TRUE(ch->basic_publish(message("hello", persistent)));
  PublishInput lost = message("lost");
  lost.routing_key = "nowhere";
  lost.mandatory = true;
  ASSERT_TRUE(ch->basic_publish(std::move(lost)));
  settle();
  ASSERT_EQ(sink.deliveries.size(), 1u);
  EXPECT_EQ(sink.deliveries[0].consumer_tag, "c1");
  EXPECT_EQ(sink.deliveries[0].delivery_tag, 1u);
  EXPECT_EQ(sink.deliveries[0].message->body, "hello");
  ASSERT_EQ(sink.returns.size(), 1u);
  EXPECT_EQ(sink.returns[0].text, "NO_ROUTE");
  // Both confirmed, in order: the second waited behind the first's commit.
  ASSERT_FALSE(sink.confirms.empty());
  EXPECT_EQ(std::get<0>(sink.confirms.back()), 2u);
  EXPECT_TRUE(std::get<2>(sink.confirms.back()));
  auto other = engine->open_channel(*conn, 2, nullptr);
  ASSERT_TRUE(other->queue_delete("q", {}).ok());
  EXPECT_EQ(sink.cancelled, std::vector<std::string>{"c1"});
  // The delivery of the deleted queue can still be acknowledged.
  EXPECT_TRUE(ch->basic_ack(1, false));
}

}  // namespace
}  // namespace warren::core
