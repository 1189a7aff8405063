#include <gtest/gtest.h>

#include "amqp/codec.h"
#include "amqp/frame.h"

namespace warren::amqp {
namespace {

TEST(MethodCodec, RoundTripsWithBitsPacked) {
  QueueDeclare q;
  q.queue = "tasks";
  q.durable = true;
  q.auto_delete = true;
  q.arguments = FieldTable{{"x-max-length", FieldValue(int32_t(10))}};
  std::string bytes = encode_method(q);
  // class 50, method 10, reserved short, shortstr, then ONE octet for the five bits.
  ASSERT_GE(bytes.size(), 4u + 2u + 6u + 1u);
  EXPECT_EQ(uint8_t(bytes[12]), 0b01010);  // passive 0, durable 1, exclusive 0, auto_delete 1
  auto decoded = decode_method(bytes);
  ASSERT_EQ(decoded.outcome, DecodedMethod::Outcome::ok);
  const auto* back = std::get_if<QueueDeclare>(&*decoded.method);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->queue, "tasks");
  EXPECT_TRUE(back->durable);
  EXPECT_FALSE(back->exclusive);
  EXPECT_TRUE(back->auto_delete);
  EXPECT_EQ(back->arguments, q.arguments);
}

TEST(MethodCodec, EveryMethodRoundTrips) {
  size_t checked = 0;
  auto check_all = [&]<size_t... I>(std::index_sequence<I...>) {
    ((checked +=
      [&] {
        using M = std::variant_alternative_t<I, AnyMethod>;
        auto decoded = decode_method(encode_method(M{}));
        EXPECT_EQ(decoded.outcome, DecodedMethod::Outcome::ok) << M::name;
        EXPECT_EQ(decoded.class_id, M::class_id);
        EXPECT_EQ(decoded.method_id, M::method_id);
        EXPECT_TRUE(decoded.method && std::holds_alternative<M>(*decoded.method)) << M::name;
        return size_t{1};
      }()),
     ...);
  };
  check_all(std::make_index_sequence<std::variant_size_v<AnyMethod>>{});
  EXPECT_EQ(checked, std::variant_size_v<AnyMethod>);
}

TEST(MethodCodec, KnowsBasicDeliverLayout) {
  BasicDeliver d;
  d.consumer_tag = "c";
  d.delivery_tag = 7;
  d.redelivered = true;
  d.exchange = "x";
  d.routing_key = "k";
  std::string expected(
      "\x00\x3c\x00\x3c\x01"
      "c"
      "\x00\x00\x00\x00\x00\x00\x00\x07\x01\x01x\x01k",
      19);
  EXPECT_EQ(encode_method(d), expected);
}

TEST(MethodCodec, UnknownAndMalformed) {
  EXPECT_EQ(decode_method(std::string("\x00\x3c\x00\x99", 4)).outcome,
            DecodedMethod::Outcome::unknown_method);
  EXPECT_EQ(decode_method(std::string("\x00\x3c", 2)).outcome, DecodedMethod::Outcome::malformed);
  std::string publish = encode_method(BasicPublish{});
  EXPECT_EQ(decode_method(publish.substr(0, publish.size() - 2)).outcome,
            DecodedMethod::Outcome::malformed);
}

TEST(FrameParser, WholeFramesOnly) {
  std::string bytes;
  append_frame(bytes, FrameType::method, 3, "hello");
  FrameParser p;
  Frame f;
  size_t used = 0;
  std::string error;
  for (size_t n = 0; n < bytes.size(); ++n)
    EXPECT_EQ(p.parse(std::string_view(bytes).substr(0, n), &f, &used, &error),
              FrameParser::Result::need_more);
  ASSERT_EQ(p.parse(bytes, &f, &used, &error), FrameParser::Result::frame);
  EXPECT_EQ(f.type, 1);
  EXPECT_EQ(f.channel, 3);
  EXPECT_EQ(f.payload, "hello");
  EXPECT_EQ(used, bytes.size());
}

TEST(FrameParser, RabbitErrorTexts) {
  FrameParser p;
  p.set_frame_max(4096);
  Frame f;
  size_t used = 0;
  std::string error;
  std::string big;
  append_frame(big, FrameType::body, 1, std::string(5000, 'x'));
  ASSERT_EQ(p.parse(big, &f, &used, &error), FrameParser::Result::error);
  EXPECT_EQ(error, "type 3, all octets = <<>>: {frame_too_large,5000,4088}");
  std::string bad_end;
  append_frame(bad_end, FrameType::method, 1, "abc");
  bad_end.back() = '\0';
  ASSERT_EQ(p.parse(bad_end, &f, &used, &error), FrameParser::Result::error);
  EXPECT_EQ(error, "type 1, all octets = <<>>: {invalid_frame_end_marker,0}");
}

}  // namespace
}  // namespace warren::amqp
